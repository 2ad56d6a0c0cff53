//! Checks who may do what in `examples/chat/template.yaml`: each function's inline IAM
//! statements are the least its code needs, and API Gateway may invoke only this API's functions.

use serde_json::json;

use super::template::*;

#[test]
fn iam_is_least_privilege() {
    let t = template();
    let (table_id, _) = super::template::routing_table(&t);
    let history_resource = json!([{"Fn::GetAtt": ["MessagesTable", "Arn"]}]);
    let table_resources = json!([
        {"Fn::GetAtt": [table_id, "Arn"]},
        {"Fn::Sub": format!("${{{table_id}.Arn}}/index/*")},
    ]);
    let queue_resource = json!([{"Fn::GetAtt": ["FanoutQueue", "Arn"]}]);
    let expected: [(&str, &[&str]); 6] = [
        // Presence: $connect and $disconnect announce to the room (issue 12).
        (
            "lambda_connect",
            &[
                "dynamodb:BatchWriteItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
                "execute-api:ManageConnections",
                // Presence to rooms above PresenceQueueAbove goes through the queue (issue 17).
                "sqs:SendMessage",
                // The room grant key, when RoomGrantKeySecretArn is given (issue 20).
                "secretsmanager:GetSecretValue",
            ],
        ),
        (
            "lambda_disconnect",
            &[
                "dynamodb:BatchWriteItem",
                "dynamodb:GetItem",
                "dynamodb:Query",
                "execute-api:ManageConnections",
                "sqs:SendMessage",
            ],
        ),
        (
            "lambda_message",
            &[
                "dynamodb:BatchWriteItem",
                "dynamodb:DeleteItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
                "dynamodb:UpdateItem",
                "execute-api:ManageConnections",
                "secretsmanager:GetSecretValue",
                "sqs:SendMessage",
            ],
        ),
        (
            "lambda_fanout_worker",
            &[
                "dynamodb:BatchWriteItem",
                // Membership checks of jobs without a key, presence's confirmations.
                "dynamodb:GetItem",
                "dynamodb:Query",
                "execute-api:ManageConnections",
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ReceiveMessage",
                "sqs:SendMessage",
            ],
        ),
        ("lambda_authorizer", &[]),
        ("lambda_jwt_authorizer", &[]),
    ];
    let mut history_statements = 0;
    for (binary, allowed) in expected {
        let (id, function) = function_by_binary(&t, binary);
        assert!(
            function["Properties"].get("Role").is_none(),
            "{id}: SAM creates one role per function"
        );
        assert_eq!(actions(function), allowed.iter().copied().collect(), "{id}");
        for statement in statements(function) {
            for action in strings(&statement["Action"]) {
                assert!(!action.contains('*'), "{id}: wildcard action {action}");
            }
            assert!(statement.get("NotAction").is_none() && statement.get("NotResource").is_none());
            let dynamodb = strings(&statement["Action"])
                .iter()
                .all(|a| a.starts_with("dynamodb:"));
            let sqs = strings(&statement["Action"])
                .iter()
                .all(|a| a.starts_with("sqs:"));
            let secrets = strings(&statement["Action"])
                .iter()
                .all(|a| a.starts_with("secretsmanager:"));
            if dynamodb && statement["Resource"] == history_resource {
                history_statements += 1;
                // The message history: append (Query + conditional PutItem) and resume (Query),
                // by the message function only.
                assert_eq!(binary, "lambda_message", "{id} must not touch the history");
                assert_eq!(
                    strings(&statement["Action"]),
                    ["dynamodb:Query", "dynamodb:PutItem"],
                    "{id}"
                );
            } else if dynamodb {
                assert_eq!(
                    statement["Resource"], table_resources,
                    "{id}: the table and its indexes only"
                );
            } else if secrets {
                assert_eq!(
                    statement["Resource"],
                    json!([{"Ref": "RoomGrantKeySecretArn"}]),
                    "{id}: the grant key's secret only"
                );
            } else if sqs {
                assert_eq!(
                    statement["Resource"], queue_resource,
                    "{id}: the fan-out queue only"
                );
            } else {
                assert_eq!(
                    strings(&statement["Action"]),
                    ["execute-api:ManageConnections"],
                    "{id}"
                );
                let resource = statement["Resource"].as_array().unwrap();
                assert_eq!(resource.len(), 1);
                assert_eq!(
                    sub_string(&resource[0]),
                    Some(
                        "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebSocketApi}/${StageName}/POST/@connections/*"
                    ),
                    "{id}"
                );
            }
        }
    }
    assert_eq!(
        history_statements, 1,
        "one statement grants the message history"
    );
}

#[test]
fn api_gateway_may_invoke_every_function_of_this_api() {
    let t = template();
    let api = api_id(&t);
    let permissions = of_type(&t, "AWS::Lambda::Permission");
    for (id, function) in of_type(&t, "AWS::Serverless::Function") {
        if binary_of(function) == "lambda_fanout_worker" {
            continue; // SQS-triggered: its event source mapping invokes it (template_queue.rs)
        }
        let (pid, permission) = permissions
            .iter()
            .find(|(_, p)| ref_target(&p["Properties"]["FunctionName"]) == Some(id))
            .unwrap_or_else(|| panic!("no permission to invoke {id}"));
        let props = &permission["Properties"];
        assert_eq!(props["Action"], "lambda:InvokeFunction", "{pid}");
        assert_eq!(props["Principal"], "apigateway.amazonaws.com", "{pid}");
        let source = sub_string(&props["SourceArn"])
            .unwrap_or_else(|| panic!("{pid}: SourceArn is a Fn::Sub"));
        let prefix = format!(
            "arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{{api}}}/"
        );
        assert!(
            source.starts_with(&prefix),
            "{pid}: {source} is not limited to this API"
        );
        assert_eq!(
            permission.get("Condition"),
            function.get("Condition"),
            "{pid}"
        );
    }
}
