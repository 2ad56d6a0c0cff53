//! Checks the queued fan-out half of `examples/chat/template.yaml`: the queue and its
//! dead-letter queue, the worker function and its SQS event source, the sizes and timeouts that
//! must agree, and who may do what with the queue.

use serde_json::{Value, json};

use super::template::{
    actions, function_by_binary, of_type, ref_target, resource, statements, strings, template,
};

/// Every function that enqueues (the routes: messages and presence) or consumes (the worker).
const QUEUE_USERS: [&str; 4] = [
    "lambda_connect",
    "lambda_disconnect",
    "lambda_message",
    "lambda_fanout_worker",
];

fn queue_arn() -> Value {
    json!({"Fn::GetAtt": ["FanoutQueue", "Arn"]})
}

#[test]
fn the_queue_redrives_to_its_dead_letter_queue() {
    let t = template();
    let queues = of_type(&t, "AWS::SQS::Queue");
    assert_eq!(queues.len(), 2, "the queue and its DLQ");
    let queue = &resource(&t, "FanoutQueue")["Properties"];
    let redrive = &queue["RedrivePolicy"];
    assert_eq!(
        redrive["deadLetterTargetArn"],
        json!({"Fn::GetAtt": ["FanoutDeadLetterQueue", "Arn"]})
    );
    assert_eq!(
        redrive["maxReceiveCount"],
        json!({"Ref": "FanoutMaxReceiveCount"})
    );
    assert!(t["Parameters"]["FanoutMaxReceiveCount"]["MinValue"].as_u64() >= Some(1));
    let dlq = &resource(&t, "FanoutDeadLetterQueue")["Properties"];
    assert!(
        dlq["MessageRetentionPeriod"].as_u64() > queue["MessageRetentionPeriod"].as_u64(),
        "a dead letter outlives the queue's own retention"
    );
}

#[test]
fn jobs_are_packed_for_the_queues_message_size_and_time_out_after_the_worker() {
    let t = template();
    let queue = &resource(&t, "FanoutQueue")["Properties"];
    let size = queue["MaximumMessageSize"].as_u64().unwrap();
    assert!((1_024..=1_048_576).contains(&size));
    for binary in QUEUE_USERS {
        let (id, function) = function_by_binary(&t, binary);
        let env = &function["Properties"]["Environment"]["Variables"];
        assert_eq!(
            env["FANOUT_QUEUE_MAX_MESSAGE_BYTES"]
                .as_str()
                .map(str::parse::<u64>),
            Some(Ok(size)),
            "{id} packs jobs for the queue's MaximumMessageSize"
        );
        assert_eq!(
            env["FANOUT_QUEUE_URL"],
            json!({"Ref": "FanoutQueue"}),
            "{id}"
        );
    }
    let (_, worker) = function_by_binary(&t, "lambda_fanout_worker");
    let timeout = worker["Properties"]["Timeout"].as_u64().unwrap();
    let visibility = queue["VisibilityTimeout"].as_u64().unwrap();
    assert!(
        visibility >= 6 * timeout,
        "VisibilityTimeout {visibility} < 6 x the worker's Timeout {timeout} (AWS's advice)"
    );
    // Retention at least the longest connection (2 h): a job outlives no connection it names.
    assert!(queue["MessageRetentionPeriod"].as_u64() >= Some(7_200));
}

/// Presence goes through the queue above `PresenceQueueAbove`, so `$connect` does not post to
/// every member of a busy room before it returns; every function that writes or reads jobs
/// shares one job key (a worker with a key refuses jobs signed without it).
#[test]
fn presence_queues_above_its_own_threshold_and_every_job_user_shares_one_key() {
    let t = template();
    let threshold = &t["Parameters"]["PresenceQueueAbove"];
    assert_eq!(threshold["Default"], json!("100"));
    let key = &t["Parameters"]["FanoutJobKey"];
    assert_eq!(key["NoEcho"], json!(true), "the key is a secret");
    assert_eq!(key["Default"], json!(""));
    let pattern = key["AllowedPattern"].as_str().unwrap();
    assert_eq!(
        pattern, "^(|.{32,})$",
        "empty, or JobKey::MIN_LEN bytes at least"
    );
    for binary in QUEUE_USERS {
        let (id, function) = function_by_binary(&t, binary);
        let env = &function["Properties"]["Environment"]["Variables"];
        assert_eq!(
            env["FANOUT_JOB_KEY"],
            json!({"Ref": "FanoutJobKey"}),
            "{id}"
        );
        assert_eq!(
            env["CHAT_PRESENCE_QUEUE_ABOVE"],
            json!({"Ref": "PresenceQueueAbove"}),
            "{id}"
        );
        assert_eq!(
            env["CHAT_QUEUE_ABOVE"],
            json!({"Ref": "QueueAbove"}),
            "{id}"
        );
    }
    // The key reaches no other function (the authorizer).
    for (id, function) in of_type(&t, "AWS::Serverless::Function") {
        if !QUEUE_USERS.contains(&super::template::binary_of(function)) {
            let env = &function["Properties"]["Environment"]["Variables"];
            assert!(env.get("FANOUT_JOB_KEY").is_none(), "{id}");
        }
    }
    assert!(
        t["Globals"]["Function"]["Environment"]["Variables"]
            .get("FANOUT_JOB_KEY")
            .is_none()
    );
}

#[test]
fn the_worker_is_triggered_by_the_queue_with_partial_batch_failures() {
    let t = template();
    let (worker_id, worker) = function_by_binary(&t, "lambda_fanout_worker");
    assert!(
        worker["Properties"].get("Events").is_none(),
        "SAM's SQS event would attach AWSLambdaSQSQueueExecutionRole (every queue)"
    );
    assert_eq!(
        worker["Properties"]["ReservedConcurrentExecutions"],
        json!({"Ref": "FanoutReservedConcurrency"})
    );
    let mappings = of_type(&t, "AWS::Lambda::EventSourceMapping");
    assert_eq!(mappings.len(), 1);
    let mapping = &mappings[0].1["Properties"];
    assert_eq!(mapping["EventSourceArn"], queue_arn());
    assert_eq!(ref_target(&mapping["FunctionName"]), Some(worker_id));
    assert_eq!(
        mapping["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert_eq!(mapping["BatchSize"], json!({"Ref": "FanoutBatchSize"}));
    let batch = &t["Parameters"]["FanoutBatchSize"];
    assert!(batch["MinValue"].as_u64() >= Some(1) && batch["MaxValue"].as_u64() <= Some(10));
    // No one else may invoke it.
    for (pid, permission) in of_type(&t, "AWS::Lambda::Permission") {
        assert_ne!(
            ref_target(&permission["Properties"]["FunctionName"]),
            Some(worker_id),
            "{pid}"
        );
    }
}

#[test]
fn only_the_routes_enqueue_and_only_the_worker_consumes() {
    let t = template();
    for (id, function) in of_type(&t, "AWS::Serverless::Function") {
        let sqs: Vec<&str> = actions(function)
            .into_iter()
            .filter(|a| a.starts_with("sqs:"))
            .collect();
        let binary = super::template::binary_of(function);
        let expected: &[&str] = match binary {
            "lambda_connect" | "lambda_disconnect" | "lambda_message" => &["sqs:SendMessage"],
            "lambda_fanout_worker" => &[
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ReceiveMessage",
                "sqs:SendMessage",
            ],
            _ => &[],
        };
        assert_eq!(sqs, expected, "{id}");
        for statement in statements(function) {
            if strings(&statement["Action"])
                .iter()
                .any(|a| a.starts_with("sqs:"))
            {
                assert_eq!(statement["Resource"], json!([queue_arn()]), "{id}");
            }
        }
    }
    let (_, message) = function_by_binary(&t, "lambda_message");
    assert_eq!(
        message["Properties"]["Environment"]["Variables"]["CHAT_QUEUE_ABOVE"],
        json!({"Ref": "QueueAbove"})
    );
    let outputs = t["Outputs"].as_object().unwrap();
    assert!(
        outputs
            .values()
            .any(|o| o["Value"] == json!({"Ref": "FanoutDeadLetterQueue"}))
    );
}
