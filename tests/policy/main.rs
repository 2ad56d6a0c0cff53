//! The room policy (`stateless_ws::policy`): each built-in rule, the combinator, and signed
//! grants — expired, forged, tampered, another user's, another room's, oversized, another
//! version — and the WARN log of a refusal, which never holds the grant.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../presence/logs.rs"]
mod logs;
mod secret;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use stateless_ws::clock::ManualClock;
use stateless_ws::event::Authorizer;
use stateless_ws::policy::{
    AnyOf, ClaimRooms, Decision, GrantError, GrantKey, PublicRooms, Refusal, RoomGrant, RoomPolicy,
    RoomRequest, SignedGrants, UserRooms,
};
use stateless_ws::{Error, RoomId, UserId};

const KEY: &str = "k3y-k3y-k3y-k3y-k3y-k3y-k3y-k3y-k3y!";
const NOW: u64 = 1_764_000_000;

fn key() -> GrantKey {
    GrantKey::new(KEY).unwrap()
}
fn room(name: &str) -> RoomId {
    RoomId::new(name).unwrap()
}
fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}
fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

async fn decide(policy: &dyn RoomPolicy, request: RoomRequest<'_>) -> Decision {
    policy.decide(&request).await.unwrap()
}

/// `SignedGrants` reading a clock stopped at `NOW`.
fn grants() -> (SignedGrants, ManualClock) {
    let clock = ManualClock::new(at(NOW));
    (
        SignedGrants::new(key()).with_clock(Arc::new(clock.clone())),
        clock,
    )
}

fn grant_for(u: &str, r: &str, ttl: u64) -> String {
    RoomGrant::issue_at(
        &key(),
        &user(u),
        &room(r),
        Duration::from_secs(ttl),
        at(NOW),
    )
    .unwrap()
}

/// What `SignedGrants` says about `token` for `u` entering `r`.
async fn verdict(rule: &SignedGrants, u: Option<&str>, r: &str, token: Option<&str>) -> Decision {
    let (u, r) = (u.map(user), room(r));
    decide(
        rule,
        RoomRequest::new(&r).with_user(u.as_ref()).with_grant(token),
    )
    .await
}

fn refused_grant(r: &str, reason: GrantError) -> Decision {
    Decision::Refuse(Refusal::Grant {
        room: room(r),
        reason,
    })
}

#[tokio::test]
async fn public_rooms_match_patterns_minus_exceptions_and_abstain_elsewhere() {
    let rule = PublicRooms::new(["lobby-*", "general"]).except(["lobby-staff"]);
    for (name, expected) in [
        ("general", Decision::Allow),
        ("lobby-1", Decision::Allow),
        ("lobby-staff", Decision::Abstain),
        ("generals", Decision::Abstain),
        ("private-x", Decision::Abstain),
    ] {
        let r = room(name);
        assert_eq!(
            decide(&rule, RoomRequest::new(&r)).await,
            expected,
            "{name}"
        );
    }
}

#[tokio::test]
async fn user_rooms_admit_only_their_user() {
    let rule = UserRooms::new("user-{id}").unwrap();
    let (alice, bob) = (user("alice"), user("bob"));
    let mine = room("user-alice");
    assert_eq!(
        decide(&rule, RoomRequest::new(&mine).with_user(Some(&alice))).await,
        Decision::Allow
    );
    assert_eq!(
        decide(&rule, RoomRequest::new(&mine).with_user(Some(&bob))).await,
        Decision::Refuse(Refusal::OtherUsersRoom { room: mine.clone() })
    );
    assert_eq!(
        decide(&rule, RoomRequest::new(&mine)).await,
        Decision::Refuse(Refusal::Anonymous { room: mine.clone() })
    );
    let other = room("general");
    assert_eq!(
        decide(&rule, RoomRequest::new(&other).with_user(Some(&alice))).await,
        Decision::Abstain
    );
    // The prefix alone is not a user's room.
    let bare = room("user-");
    assert_eq!(
        decide(&rule, RoomRequest::new(&bare).with_user(Some(&alice))).await,
        Decision::Abstain
    );
}

#[tokio::test]
async fn claim_rooms_read_lists_in_every_shape_api_gateway_passes() {
    let rule = ClaimRooms::new("rooms");
    let ops = room("ops");
    for value in [
        serde_json::json!("ops,dev"),
        serde_json::json!("dev ops"),
        serde_json::json!(r#"["dev","ops"]"#),
        serde_json::json!(["dev", "ops"]),
    ] {
        let context = Authorizer::new().with("rooms", value.clone());
        assert_eq!(
            decide(
                &rule,
                RoomRequest::new(&ops).with_authorizer(Some(&context))
            )
            .await,
            Decision::Allow,
            "{value}"
        );
    }
    let context = Authorizer::new().with("rooms", "dev,opsx");
    assert_eq!(
        decide(
            &rule,
            RoomRequest::new(&ops).with_authorizer(Some(&context))
        )
        .await,
        Decision::Abstain
    );
    assert_eq!(
        decide(&rule, RoomRequest::new(&ops)).await,
        Decision::Abstain
    );
}

#[tokio::test]
async fn a_valid_grant_admits_its_user_to_its_room() {
    let (rule, clock) = grants();
    let token = grant_for("alice", "private-x", 60);
    assert_eq!(
        verdict(&rule, Some("alice"), "private-x", Some(&token)).await,
        Decision::Allow
    );
    // Within the leeway after expiry: still accepted (the issuer's clock may be ahead).
    clock.advance(Duration::from_secs(60) + RoomGrant::LEEWAY);
    assert_eq!(
        verdict(&rule, Some("alice"), "private-x", Some(&token)).await,
        Decision::Allow
    );
}

#[tokio::test]
async fn an_expired_grant_is_refused() {
    let (rule, clock) = grants();
    let token = grant_for("alice", "private-x", 60);
    clock.advance(Duration::from_secs(61) + RoomGrant::LEEWAY);
    assert_eq!(
        verdict(&rule, Some("alice"), "private-x", Some(&token)).await,
        refused_grant(
            "private-x",
            GrantError::Expired {
                expires_at: NOW + 60
            }
        )
    );
}

#[tokio::test]
async fn another_users_or_another_rooms_grant_is_refused() {
    let (rule, _) = grants();
    let token = grant_for("alice", "private-x", 60);
    assert_eq!(
        verdict(&rule, Some("mallory"), "private-x", Some(&token)).await,
        refused_grant("private-x", GrantError::OtherUser)
    );
    assert_eq!(
        verdict(&rule, Some("alice"), "private-y", Some(&token)).await,
        refused_grant("private-y", GrantError::OtherRoom)
    );
    assert_eq!(
        verdict(&rule, None, "private-x", Some(&token)).await,
        refused_grant("private-x", GrantError::Anonymous)
    );
}

#[tokio::test]
async fn forged_and_tampered_grants_are_refused() {
    let (rule, _) = grants();
    let token = grant_for("alice", "private-x", 60);
    let (payload, tag) = token.split_once('.').unwrap();

    // Signed with another key.
    let forged = RoomGrant::issue_at(
        &GrantKey::new("another key, another key, another!").unwrap(),
        &user("alice"),
        &room("private-x"),
        Duration::from_secs(60),
        at(NOW),
    )
    .unwrap();
    // The payload changed (another user), the tag kept.
    let json = format!(
        r#"{{"v":1,"u":"mallory","r":"private-x","exp":{}}}"#,
        NOW + 60
    );
    let tampered = format!("{}.{tag}", B64.encode(json));
    // One bit of the tag flipped.
    let mut tag_bytes = B64.decode(tag).unwrap();
    tag_bytes[0] ^= 1;
    let flipped = format!("{payload}.{}", B64.encode(tag_bytes));
    for (what, token, u) in [
        ("forged", forged.as_str(), "alice"),
        ("tampered", tampered.as_str(), "mallory"),
        ("flipped", flipped.as_str(), "alice"),
        ("no tag", payload, "alice"),
    ] {
        let expected = if what == "no tag" {
            GrantError::Malformed
        } else {
            GrantError::BadSignature
        };
        assert_eq!(
            verdict(&rule, Some(u), "private-x", Some(token)).await,
            refused_grant("private-x", expected),
            "{what}"
        );
    }
    // Garbage fails as malformed, or as a bad signature when it splits and decodes.
    for garbage in ["", ".", "a.b", "%%%.###", "ÿ.ÿ", "...."] {
        let decision = verdict(&rule, Some("alice"), "private-x", Some(garbage)).await;
        assert!(
            decision == refused_grant("private-x", GrantError::Malformed)
                || decision == refused_grant("private-x", GrantError::BadSignature),
            "{garbage:?}: {decision:?}"
        );
    }
}

#[tokio::test]
async fn a_signed_grant_of_another_version_or_shape_is_refused() {
    let (rule, _) = grants();
    let sign = |json: &str| {
        let payload = B64.encode(json);
        // Signed with the real key through the public API: a v2 grant a newer issuer wrote.
        let tag = signature(&payload);
        format!("{payload}.{tag}")
    };
    let v2 = sign(&format!(
        r#"{{"v":2,"u":"alice","r":"private-x","exp":{}}}"#,
        NOW + 60
    ));
    assert_eq!(
        verdict(&rule, Some("alice"), "private-x", Some(&v2)).await,
        refused_grant("private-x", GrantError::Version { version: 2 })
    );
    let no_room = sign(&format!(r#"{{"v":1,"u":"alice","exp":{}}}"#, NOW + 60));
    assert_eq!(
        verdict(&rule, Some("alice"), "private-x", Some(&no_room)).await,
        refused_grant("private-x", GrantError::Malformed)
    );
    let bad_room = sign(&format!(
        r##"{{"v":1,"u":"alice","r":"a#b","exp":{}}}"##,
        NOW + 60
    ));
    assert_eq!(
        verdict(&rule, Some("alice"), "private-x", Some(&bad_room)).await,
        refused_grant("private-x", GrantError::Malformed)
    );
    // A day ahead: not one `issue` makes (its TTL is capped at an hour).
    let long = sign(&format!(
        r#"{{"v":1,"u":"alice","r":"private-x","exp":{}}}"#,
        NOW + 86_400
    ));
    assert_eq!(
        verdict(&rule, Some("alice"), "private-x", Some(&long)).await,
        refused_grant(
            "private-x",
            GrantError::TooLongLived {
                expires_at: NOW + 86_400
            }
        )
    );
}

/// The base64url tag of `payload` under `KEY`, computed from a grant `sign` wrote: the tag of a
/// `RoomGrant` whose JSON is exactly the payload.
fn signature(payload: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(payload.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn the_documented_format_is_what_issue_writes() {
    let token = grant_for("alice", "private-x", 60);
    let (payload, tag) = token.split_once('.').unwrap();
    assert_eq!(
        tag,
        signature(payload),
        "HMAC-SHA256 over the base64url payload"
    );
    assert_eq!(
        String::from_utf8(B64.decode(payload).unwrap()).unwrap(),
        format!(
            r#"{{"v":1,"u":"alice","r":"private-x","exp":{}}}"#,
            NOW + 60
        )
    );
}

#[tokio::test]
async fn an_oversized_grant_is_refused_before_decoding() {
    let (rule, _) = grants();
    let huge = "a".repeat(RoomGrant::MAX_LEN + 1);
    assert_eq!(
        verdict(&rule, Some("alice"), "private-x", Some(&huge)).await,
        refused_grant(
            "private-x",
            GrantError::TooLong {
                len: RoomGrant::MAX_LEN + 1,
                limit: RoomGrant::MAX_LEN
            }
        )
    );
    // The longest ids fit.
    let (u, r) = ("u".repeat(256), "r".repeat(128));
    let token = grant_for(&u, &r, 60);
    assert!(token.len() <= RoomGrant::MAX_LEN, "{}", token.len());
    assert_eq!(
        verdict(&rule, Some(&u), &r, Some(&token)).await,
        Decision::Allow
    );
}

#[tokio::test]
async fn no_grant_is_refused_in_scope_and_abstained_on_outside() {
    let (rule, _) = grants();
    let rule = rule.for_rooms(["private-*"]);
    assert_eq!(
        verdict(&rule, Some("alice"), "private-x", None).await,
        Decision::Refuse(Refusal::GrantRequired {
            room: room("private-x")
        })
    );
    assert_eq!(
        verdict(&rule, Some("alice"), "general", None).await,
        Decision::Abstain
    );
}

#[tokio::test]
async fn the_previous_key_is_accepted_during_a_rotation() {
    let old = GrantKey::new("the old key, the old key, the old!").unwrap();
    let token = RoomGrant::issue_at(
        &old,
        &user("alice"),
        &room("private-x"),
        Duration::from_secs(60),
        at(NOW),
    )
    .unwrap();
    let (rule, _) = grants();
    assert_eq!(
        verdict(&rule, Some("alice"), "private-x", Some(&token)).await,
        refused_grant("private-x", GrantError::BadSignature)
    );
    let rule = rule.with_previous_key(old);
    assert_eq!(
        verdict(&rule, Some("alice"), "private-x", Some(&token)).await,
        Decision::Allow
    );
}

#[test]
fn issue_refuses_short_keys_and_long_ttls() {
    assert!(matches!(GrantKey::new("short"), Err(Error::Config { .. })));
    for ttl in [Duration::ZERO, RoomGrant::MAX_TTL + Duration::from_secs(1)] {
        assert!(matches!(
            RoomGrant::issue(&key(), &user("a"), &room("r"), ttl),
            Err(Error::Config { .. })
        ));
    }
    assert!(RoomGrant::issue(&key(), &user("a"), &room("r"), RoomGrant::MAX_TTL).is_ok());
    assert_eq!(format!("{:?}", key()), "GrantKey(..)");
}

fn chat_rules(rule: SignedGrants) -> Arc<dyn RoomPolicy> {
    let user_rooms = UserRooms::new("user-{id}").unwrap();
    Arc::new(
        AnyOf::new()
            .with(rule.for_rooms(["private-*"]))
            .with(PublicRooms::all().except(["private-*".to_owned(), user_rooms.pattern()]))
            .with(user_rooms)
            .with(ClaimRooms::new("rooms")),
    )
}

#[tokio::test]
async fn any_of_admits_what_one_rule_admits_and_refuses_with_the_first_reason() {
    let (rule, _) = grants();
    let policy = chat_rules(rule);
    let alice = user("alice");
    let token = grant_for("alice", "private-x", 60);
    let check = |r: &'static str, grant: Option<&'static str>, ctx: Option<Authorizer>| {
        let policy = Arc::clone(&policy);
        let alice = alice.clone();
        async move {
            let r = room(r);
            let request = RoomRequest::new(&r)
                .with_user(Some(&alice))
                .with_authorizer(ctx.as_ref())
                .with_grant(grant);
            policy.check(&request).await
        }
    };
    assert!(check("general", None, None).await.is_ok());
    assert!(check("user-alice", None, None).await.is_ok());
    let token: &'static str = Box::leak(token.into_boxed_str());
    assert!(check("private-x", Some(token), None).await.is_ok());
    // Listed in the claim: no grant needed.
    let ops = Authorizer::new().with("rooms", "private-ops");
    assert!(check("private-ops", None, Some(ops)).await.is_ok());

    let refusal = |result: stateless_ws::Result<()>| match result {
        Err(Error::RoomRefused(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(
        refusal(check("private-y", None, None).await),
        Refusal::GrantRequired {
            room: room("private-y")
        }
    );
    assert_eq!(
        refusal(check("user-bob", None, None).await),
        Refusal::OtherUsersRoom {
            room: room("user-bob")
        }
    );
    // No rule speaks for a room: refused as no rule's.
    let empty: Arc<dyn RoomPolicy> = Arc::new(AnyOf::new());
    let r = room("general");
    let err = empty.check(&RoomRequest::new(&r)).await.unwrap_err();
    assert_eq!(err.to_string(), "room `general` is not open to you");
    assert_eq!(stateless_ws::lambda::status_for(&err), 403);
}

#[tokio::test(flavor = "current_thread")]
async fn a_refusal_is_logged_at_warn_with_its_reason_and_never_the_grant() {
    let capture = logs::LogCapture::default();
    let _guard = tracing::subscriber::set_default(capture.subscriber());
    let (rule, _) = grants();
    let policy = chat_rules(rule);
    let token = grant_for("alice", "private-x", 60);
    let (mallory, r) = (user("mallory"), room("private-x"));
    let request = RoomRequest::new(&r)
        .with_user(Some(&mallory))
        .with_grant(Some(&token));
    let err = policy.check(&request).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "room `private-x`: the grant was issued to another user"
    );
    let text = capture.text();
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("issued to another user"), "{text}");
    assert!(text.contains("mallory"), "{text}");
    let (payload, tag) = token.split_once('.').unwrap();
    assert!(!text.contains(payload) && !text.contains(tag), "{text}");
    assert!(!format!("{request:?}").contains(payload));
}
