# The "karma" bus: every stage publishes its outputs here (KARMA_EVENT_BUS), as events with
# source "karma" and detail-type = the message type (shared/eventbridge.Publisher). The rules
# are the ones eventbridge.Rules() derives from pipeline.Routes (local.bus_rules in main.tf),
# with the same names ("karma-to-<stage>"), target ids ("queue-<stage>") and descriptions as
# eventbridge.EnsureRules, so a rule created by hand or by the tests matches these.

resource "aws_cloudwatch_event_bus" "karma" {
  name = local.prefix
}

resource "aws_cloudwatch_event_rule" "stage" {
  for_each = local.bus_rules

  name           = "karma-to-${each.key}"
  event_bus_name = aws_cloudwatch_event_bus.karma.name
  event_pattern  = each.value
  description    = "Karma: route events to the ${each.key} queue"
}

resource "aws_cloudwatch_event_target" "stage" {
  for_each = local.bus_rules

  rule           = aws_cloudwatch_event_rule.stage[each.key].name
  event_bus_name = aws_cloudwatch_event_bus.karma.name
  target_id      = "queue-${each.key}"
  arn            = aws_sqs_queue.stage[each.key].arn

  dead_letter_config {
    arn = aws_sqs_queue.events_dlq.arn
  }
}

# Parameter Store changes (docs/triggers.md): the "Parameter Store Change" events of the
# default bus for parameters under the prefix go to the ingest queue. ssmevent.Classify only
# accepts names starting with <prefix>/ exactly, hence the trailing slash of the filter.
resource "aws_cloudwatch_event_rule" "parameter_store" {
  name        = "${local.prefix}-parameter-store-to-ingest"
  description = "Karma: Parameter Store changes under ${var.param_prefix}/ to the ingest queue"
  event_pattern = jsonencode({
    source        = ["aws.ssm"]
    "detail-type" = ["Parameter Store Change"]
    detail = {
      name = [{ prefix = "${var.param_prefix}/" }]
    }
  })

  # The longest name built from <name_prefix>-<environment>: AWS takes at most 64 characters
  # for a rule's name, so the two together take at most 38. Refused here, at plan, rather than
  # by EventBridge half-way through an apply.
  lifecycle {
    precondition {
      condition     = length("${local.prefix}-parameter-store-to-ingest") <= 64
      error_message = "name_prefix and environment: \"${local.prefix}\" is ${length(local.prefix)} characters, and \"<name_prefix>-<environment>\" may be at most 38 (the EventBridge rule ${local.prefix}-parameter-store-to-ingest would be over AWS's 64)."
    }
  }
}

resource "aws_cloudwatch_event_target" "parameter_store" {
  rule      = aws_cloudwatch_event_rule.parameter_store.name
  target_id = "queue-ingest"
  arn       = aws_sqs_queue.stage["ingest"].arn

  dead_letter_config {
    arn = aws_sqs_queue.events_dlq.arn
  }
}

# The promotions (docs/pipeline.md, "Promotions"): a change set records when the soak of its
# change ends; the promote function (KARMA_STAGE=promote) runs on a schedule and starts the
# next environment of every change whose soak is over. The schedule bounds how late it starts.
resource "aws_cloudwatch_event_rule" "promote" {
  name                = "${local.prefix}-promote"
  description         = "Karma: start the promotions whose soak is over"
  schedule_expression = var.promote_schedule
}

resource "aws_cloudwatch_event_target" "promote" {
  rule      = aws_cloudwatch_event_rule.promote.name
  target_id = "promote"
  arn       = aws_lambda_function.stage["promote"].arn
}

resource "aws_lambda_permission" "promote" {
  statement_id  = "AllowEventBridgeSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.stage["promote"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.promote.arn
}

# The periodic reconcile (docs/triggers.md, "Missed events"): EventBridge delivers Parameter
# Store events best-effort, so the reconcile function (KARMA_STAGE=reconcile) runs on a
# schedule and ingests the /config and /runtime versions that were not ingested yet.
resource "aws_cloudwatch_event_rule" "reconcile" {
  count               = var.enable_ingest_function ? 1 : 0
  name                = "${local.prefix}-reconcile"
  description         = "Karma: compare Parameter Store with what was ingested"
  schedule_expression = var.reconcile_schedule
}

resource "aws_cloudwatch_event_target" "reconcile" {
  count     = var.enable_ingest_function ? 1 : 0
  rule      = aws_cloudwatch_event_rule.reconcile[0].name
  target_id = "reconcile"
  arn       = aws_lambda_function.stage["reconcile"].arn
}

resource "aws_lambda_permission" "reconcile" {
  count         = var.enable_ingest_function ? 1 : 0
  statement_id  = "AllowEventBridgeSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.stage["reconcile"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.reconcile[0].arn
}

# The drift check (docs/drift.md): the drift function (KARMA_STAGE=drift) compares this
# environment's parameters — and, where its account_environments file sets drift_refresh, the
# real infrastructure through refresh-only plans — with the deploy branch's head on a schedule,
# and publishes what it finds to the karma bus (drift.detected; corrective change sets when the
# environment does not allow drift).
resource "aws_cloudwatch_event_rule" "drift" {
  count               = var.enable_drift_function ? 1 : 0
  name                = "${local.prefix}-drift"
  description         = "Karma: the drift check of ${var.environment}"
  schedule_expression = var.drift_schedule
}

resource "aws_cloudwatch_event_target" "drift" {
  count     = var.enable_drift_function ? 1 : 0
  rule      = aws_cloudwatch_event_rule.drift[0].name
  target_id = "drift"
  arn       = aws_lambda_function.stage["drift"].arn
}

resource "aws_lambda_permission" "drift" {
  count         = var.enable_drift_function ? 1 : 0
  statement_id  = "AllowEventBridgeDriftSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.stage["drift"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.drift[0].arn
}
