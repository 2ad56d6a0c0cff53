//! What the AWS SDK clients (management API, SQS) share: telling a request that never left from
//! one whose outcome is unknown.

/// Whether a dispatch failure happened while connecting, before the request was written.
///
/// The SDK's HTTP client (hyper-util) reports every connect-phase failure — DNS, TCP, TLS — as
/// `client error (Connect)`; a refused or unreachable address also shows as an I/O error of that
/// kind. Anything else is treated as possibly sent, which is the safe side: at worst a post that
/// never left is reported with an unknown outcome instead of being retried.
pub(crate) fn failed_to_connect(err: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind;
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::AddrNotAvailable
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
            )
        {
            return true;
        }
        if e.to_string().starts_with("client error (Connect)") {
            return true;
        }
        next = e.source();
    }
    false
}
