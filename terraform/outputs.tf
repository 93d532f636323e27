output "webhook_url" {
  description = "Where Git providers POST pushes (null unless enable_webhook)."
  value       = var.enable_webhook ? "${aws_apigatewayv2_api.webhooks[0].api_endpoint}/webhooks/git" : null
}

output "event_bus_name" {
  description = "The karma bus (KARMA_EVENT_BUS)."
  value       = aws_cloudwatch_event_bus.karma.name
}

output "event_bus_arn" {
  description = "The karma bus's ARN."
  value       = aws_cloudwatch_event_bus.karma.arn
}

output "queue_prefix" {
  description = "KARMA_QUEUE_PREFIX: queue <stage> is <queue_prefix><stage>."
  value       = local.queue_prefix
}

output "queue_urls" {
  description = "Stage queue URLs by stage."
  value       = { for stage, q in aws_sqs_queue.stage : stage => q.url }
}

output "dead_letter_queue_urls" {
  description = "Stage dead-letter queue URLs by stage, and the EventBridge delivery DLQ as \"eventbridge\"."
  value       = merge({ for stage, q in aws_sqs_queue.dlq : stage => q.url }, { eventbridge = aws_sqs_queue.events_dlq.url })
}

output "table_names" {
  description = "The DynamoDB tables (KARMA_AUDIT_TABLE, KARMA_CHANGE_SET_TABLE, KARMA_IDEMPOTENCY_TABLE)."
  value = {
    audit       = aws_dynamodb_table.audit.name
    change_sets = aws_dynamodb_table.change_sets.name
    idempotency = aws_dynamodb_table.seen.name
  }
}

output "function_names" {
  description = "The Lambda functions by stage."
  value       = { for stage, f in aws_lambda_function.stage : stage => f.function_name }
}

output "neptune_endpoint" {
  description = "KARMA_NEPTUNE_ENDPOINT (wss://<cluster>:<port>/gremlin), for `karma` commands run against this environment too."
  value       = local.neptune_url
}

output "efs_access_point_arn" {
  description = "The EFS access point of plan's and apply's workspaces (saved plans and the components' Terraform state)."
  value       = local.efs_access_point_arn
}

output "api_url" {
  description = "Karma's HTTP API (IAM authorization: sign requests with SigV4); null unless enable_api."
  value       = var.enable_api ? aws_apigatewayv2_api.karma[0].api_endpoint : null
}
