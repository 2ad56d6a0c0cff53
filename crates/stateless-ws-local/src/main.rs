//! `stateless-ws-local`: see `--help`, and the crate docs.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use stateless_ws_local::{LocalApi, LocalCa, Naming, Settings, parse_pairs, trust_env};

/// Serve the API Gateway WebSocket API of a SAM/CloudFormation template on this machine,
/// invoking your real Lambda functions through a local runner.
///
/// Start a runner that serves the Lambda Invoke API, then point this tool at it:
///
///   cargo lambda watch                                   # in the functions' crate, port 9000
///
///   stateless-ws-local --template template.yaml --lambda-endpoint http://127.0.0.1:9000 --function-names binary --env-file .env.local
///
/// (`sam local start-lambda` listens on port 3001 and names functions by logical id, the
/// default here.) Clients connect to the printed ws:// URL; every $connect, message and
/// $disconnect becomes the event API Gateway would send, POSTed to the runner; the functions
/// reach the clients through the printed management endpoint (APIGW_MANAGEMENT_URL).
///
/// The functions need that variable and the template's others: `--env-file` writes them in the
/// format `cargo lambda watch --env-file` reads (restart the watcher after the first run),
/// `--env-json` as `sam local start-lambda --env-vars` reads them.
///
/// The port also speaks TLS (wss://, https://), so handlers that post to
/// https://{requestContext.domainName}/{stage}, as AWS's samples do, work unmodified once they
/// trust the local CA (kept in --ca-dir): the printed environment has the variables for that
/// (AWS_CA_BUNDLE, SSL_CERT_FILE, REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS).
#[derive(Debug, Parser)]
#[command(name = "stateless-ws-local", version, verbatim_doc_comment)]
struct Args {
    /// The SAM/CloudFormation template (YAML or JSON) with an AWS::ApiGatewayV2::Api of
    /// ProtocolType WEBSOCKET.
    #[arg(
        long,
        short = 't',
        value_name = "FILE",
        default_value = "template.yaml"
    )]
    template: PathBuf,

    /// The Lambda Invoke API of the runner: `cargo lambda watch` http://127.0.0.1:9000,
    /// `sam local start-lambda` http://127.0.0.1:3001, MiniStack its port.
    #[arg(
        long,
        short = 'l',
        value_name = "URL",
        default_value = "http://127.0.0.1:9000"
    )]
    lambda_endpoint: String,

    /// How functions are named on the runner: `logical-id` (ConnectFunction: sam local,
    /// MiniStack) or `binary` (lambda_connect from CodeUri .../target/lambda/lambda_connect/:
    /// cargo lambda watch).
    #[arg(long, value_enum, default_value_t = NamingArg::LogicalId)]
    function_names: NamingArg,

    /// Name individual functions: LogicalId=name (repeatable; overrides --function-names).
    #[arg(long, value_name = "LOGICAL=NAME", num_args = 1..)]
    function_name_map: Vec<String>,

    /// Template parameters, as in `sam deploy`: Key=Value ... (e.g. EnableAuthorizer=true).
    #[arg(long, value_name = "KEY=VALUE", num_args = 1..)]
    parameter_overrides: Vec<String>,

    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,

    /// The port to listen on (0 picks a free one).
    #[arg(long, short = 'p', default_value_t = 3002)]
    port: u16,

    /// The stage in the URL (default: the StageName of the template's AWS::ApiGatewayV2::Stage,
    /// else `local`); also what `Ref` of that Stage gives the functions.
    #[arg(long)]
    stage: Option<String>,

    /// The AWS endpoint the functions use locally (MiniStack, LocalStack), e.g.
    /// http://127.0.0.1:4566: put in their environment as AWS_ENDPOINT_URL, and queue URLs are
    /// the ones it gives ({endpoint}/{account}/{name}). `--env AWS_ENDPOINT_URL=...` counts too.
    #[arg(long, value_name = "URL")]
    aws_endpoint: Option<String>,

    /// AWS::StackName, and the first part of the names of resources without one
    /// ({stack}-{LogicalId}: a table without TableName, a queue without QueueName).
    #[arg(long, default_value = "local")]
    stack_name: String,

    /// Which WebSocket API to serve, by logical id, when the template has several.
    #[arg(long, value_name = "LOGICAL_ID")]
    api: Option<String>,

    /// Write the functions' environment here (KEY=VALUE lines), with APIGW_MANAGEMENT_URL
    /// pointing at this gateway.
    #[arg(long, value_name = "PATH")]
    env_file: Option<PathBuf>,

    /// Write the functions' environment here as JSON, one object per function by logical id:
    /// the file `sam local start-lambda --env-vars` reads (SAM sets only the variables a
    /// function's Environment declares).
    #[arg(long, value_name = "PATH")]
    env_json: Option<PathBuf>,

    /// Where the local CA that issues the gateway's TLS certificate is kept (made on first
    /// use; default $XDG_DATA_HOME/stateless-ws-local, else ~/.local/share/stateless-ws-local).
    #[arg(long, value_name = "DIR")]
    ca_dir: Option<PathBuf>,

    /// Serve plain ws:// and http:// only: no TLS, no CA, no trust variables.
    #[arg(long, conflicts_with = "ca_dir")]
    no_tls: bool,

    /// Add or replace a variable in the printed environment and --env-file (repeatable), e.g.
    /// CONNECTIONS_TABLE=my-table or AWS_ENDPOINT_URL=http://127.0.0.1:4566.
    #[arg(long = "env", value_name = "KEY=VALUE", num_args = 1..)]
    env: Vec<String>,

    /// The integration timeout in seconds (API Gateway's is 29).
    #[arg(long, value_name = "SECONDS", default_value_t = 29.0)]
    timeout: f64,

    /// AWS::Region in the template and in the authorizer's methodArn.
    #[arg(long, default_value = "us-east-1")]
    region: String,

    /// AWS::AccountId in the template and in the authorizer's methodArn (default: the account
    /// MiniStack and LocalStack use for a non-numeric access key).
    #[arg(long, default_value = "000000000000")]
    account_id: String,

    /// Tell clients what failed when a function fails (its error type and message, the Invoke
    /// API's answer, the timeout), in a `detail` field beside "Internal server error". For
    /// development: by default clients learn nothing about the infrastructure; the log has it.
    #[arg(long)]
    expose_errors: bool,

    /// Read the template, print what would be served, and exit.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum NamingArg {
    LogicalId,
    Binary,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,hyper_util=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("stateless-ws-local: error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let text = std::fs::read_to_string(&args.template)
        .map_err(|e| format!("cannot read {}: {e}", args.template.display()))?;
    let mut extra = parse_pairs("--env", &args.env).map_err(|e| e.to_string())?;
    if let Some(endpoint) = &args.aws_endpoint {
        extra
            .entry("AWS_ENDPOINT_URL".to_owned())
            .or_insert_with(|| endpoint.clone());
    }
    let settings = Settings {
        region: args.region.clone(),
        account_id: args.account_id.clone(),
        stack_name: args.stack_name.clone(),
        parameter_overrides: parse_pairs("--parameter-overrides", &args.parameter_overrides)
            .map_err(|e| e.to_string())?,
        stage: args.stage.clone(),
        endpoint: extra.get("AWS_ENDPOINT_URL").cloned(),
    };
    let api = LocalApi::from_template(&text, settings, args.api.as_deref())
        .map_err(|e| format!("{}: {e}", args.template.display()))?;
    let naming = match args.function_names {
        NamingArg::LogicalId => Naming::LogicalId,
        NamingArg::Binary => Naming::Binary,
    };
    let overrides =
        parse_pairs("--function-name-map", &args.function_name_map).map_err(|e| e.to_string())?;
    let names = api
        .function_names(naming, &overrides)
        .map_err(|e| e.to_string())?;
    if !(args.timeout.is_finite() && args.timeout > 0.0 && args.timeout <= 900.0) {
        return Err("--timeout must be between 0 and 900 seconds".to_owned());
    }
    let stage = api.api().stage.clone();
    let mut gateway = api
        .gateway(
            &args.lambda_endpoint,
            &names,
            Some(Duration::from_secs_f64(args.timeout)),
        )
        .map_err(|e| e.to_string())?
        .expose_errors(args.expose_errors)
        .tls(!args.no_tls);
    if let Some(dir) = &args.ca_dir {
        gateway = gateway.ca_dir(dir);
    }
    print_plan(&api, &names, &args);
    for stand_in in api.stand_ins(&extra) {
        println!("  note: {}", stand_in.note());
    }
    if args.dry_run {
        let management = format!("http://{}:{}/{stage}", args.host, args.port);
        let ca_dir = args.ca_dir.clone().or_else(LocalCa::default_dir);
        let trust = match ca_dir {
            Some(dir) if !args.no_tls => trust_env(&dir),
            _ => BTreeMap::new(),
        };
        print_env(&api.env_file(&management, &with_trust(trust, &extra)));
        return Ok(());
    }
    let running = gateway
        .bind(SocketAddr::new(args.host, args.port))
        .await
        .map_err(|e| e.to_string())?;
    let management = running.management_endpoint();
    println!();
    println!("WebSocket URL        {}", running.ws_url());
    println!("management endpoint  {management}");
    let trust = match (
        running.wss_url(),
        running.https_management_endpoint(),
        running.local_ca(),
    ) {
        (Some(wss), Some(https), Some(ca)) => {
            println!("  over TLS           {wss}");
            println!("  over TLS           {https}");
            println!(
                "local CA             {} (trust it once; the bundle adds the system's roots: {})",
                ca.cert_path().display(),
                ca.bundle_path().display()
            );
            ca.trust_env()
        }
        _ => {
            println!("TLS                  off (plain ws:// and http:// only)");
            BTreeMap::new()
        }
    };
    let extra = with_trust(trust, &extra);
    let env_file = api.env_file(&management, &extra);
    print_env(&env_file);
    if let Some(path) = &args.env_file {
        std::fs::write(path, &env_file)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!(
            "wrote {} (cargo lambda watch --env-file {})",
            path.display(),
            path.display()
        );
    }
    if let Some(path) = &args.env_json {
        std::fs::write(path, api.env_json(&management, &extra))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!(
            "wrote {} (sam local start-lambda --env-vars {})",
            path.display(),
            path.display()
        );
    }
    println!("\nServing; Ctrl-C stops (every open connection gets its $disconnect).");
    let _ = tokio::signal::ctrl_c().await;
    let report = running.shutdown().await;
    println!(
        "stopped: {} connection(s) were open, {} handler(s) unfinished",
        report.open_connections, report.unfinished
    );
    Ok(())
}

fn print_plan(api: &LocalApi, names: &BTreeMap<String, String>, args: &Args) {
    let spec = api.api();
    println!(
        "{}: WebSocket API {} (route selection $request.body.{}), Lambda Invoke API {}",
        args.template.display(),
        spec.logical_id,
        spec.route_selection,
        args.lambda_endpoint
    );
    for route in &spec.routes {
        let name = names.get(&route.function).map_or("?", String::as_str);
        let way = if route.two_way { "two-way" } else { "one-way" };
        println!(
            "  {:<14} -> {name:<24} ({}, {way})",
            route.route_key, route.function
        );
    }
    match &spec.authorizer {
        Some(auth) => {
            let name = names.get(&auth.function).map_or("?", String::as_str);
            println!(
                "  authorizer     -> {name:<24} ({}, REQUEST; identity: {})",
                auth.function,
                if auth.identity_sources.is_empty() {
                    "none".to_owned()
                } else {
                    auth.identity_sources.join(", ")
                }
            );
        }
        None => println!("  authorizer     none on $connect"),
    }
    for note in &spec.notes {
        println!("  note: {note}");
    }
}

/// The variables that trust the local CA, then the user's `--env` on top (which may replace
/// them, e.g. to point at a CA path as a container sees it).
fn with_trust(
    trust: BTreeMap<String, String>,
    user_env: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut extra = trust;
    extra.extend(user_env.iter().map(|(k, v)| (k.clone(), v.clone())));
    extra
}

fn print_env(env_file: &str) {
    println!("\nThe functions' environment (also the --env-file contents):");
    for line in env_file.lines().filter(|l| !l.starts_with("# Written")) {
        println!("  {line}");
    }
}
