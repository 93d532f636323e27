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

  # A run EventBridge cannot deliver (the function's permission gone, Lambda refusing it) is
  # retried until the next one is due, then dead-lettered: the queue's alarm says so.
  retry_policy {
    maximum_event_age_in_seconds = local.scheduled_event_age["promote"]
    maximum_retry_attempts       = 185
  }

  dead_letter_config {
    arn = aws_sqs_queue.events_dlq.arn
  }
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

  # A run EventBridge cannot deliver (the function's permission gone, Lambda refusing it) is
  # retried until the next one is due, then dead-lettered: the queue's alarm says so.
  retry_policy {
    maximum_event_age_in_seconds = local.scheduled_event_age["reconcile"]
    maximum_retry_attempts       = 185
  }

  dead_letter_config {
    arn = aws_sqs_queue.events_dlq.arn
  }
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

  # A run EventBridge cannot deliver (the function's permission gone, Lambda refusing it) is
  # retried until the next one is due, then dead-lettered: the queue's alarm says so.
  retry_policy {
    maximum_event_age_in_seconds = local.scheduled_event_age["drift"]
    maximum_retry_attempts       = 185
  }

  dead_letter_config {
    arn = aws_sqs_queue.events_dlq.arn
  }
}

resource "aws_lambda_permission" "drift" {
  count         = var.enable_drift_function ? 1 : 0
  statement_id  = "AllowEventBridgeDriftSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.stage["drift"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.drift[0].arn
}

# The scheduled functions (promote, reconcile, drift) are invoked asynchronously: by default
# Lambda runs a failed invocation twice more (1, then 2 minutes later) and keeps one it could not
# start (throttled) for 6 hours. Their runs are idempotent — a promotion published again is one
# change (resolve's key "promotion:<change set>"), a drift is recorded once (shared/drift), a
# parameter version is ingested once (trigger.Reconciler) — so the next scheduled run is their
# retry: a blind one would only run the whole check again beside it (the drift function's
# refresh-only plans, up to 15 minutes each time). So no retries, and a run Lambda could not
# start within its schedule's interval (rate(): 60 s to 6 h; cron(): 60 s) is dropped: the next
# one is due. A failed run is seen through its Errors alarm (below).
locals {
  scheduled = merge(
    { promote = var.promote_schedule },
    var.enable_ingest_function ? { reconcile = var.reconcile_schedule } : {},
    var.enable_drift_function ? { drift = var.drift_schedule } : {},
  )
  schedule_units = { minute = 60, hour = 3600, day = 86400 }
  scheduled_event_age = { for fn, expr in local.scheduled : fn => min(21600, max(60, try(
    tonumber(regex("^rate\\((\\d+) (minute|hour|day)s?\\)$", expr)[0]) * local.schedule_units[regex("^rate\\((\\d+) (minute|hour|day)s?\\)$", expr)[1]],
    60,
  ))) }
}

resource "aws_lambda_function_event_invoke_config" "scheduled" {
  for_each = local.scheduled

  function_name                = aws_lambda_function.stage[each.key].function_name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = local.scheduled_event_age[each.key]
}

# A scheduled run that failed — a drift check that could not compare everything, a promotion
# that could not be published, a reconcile that could not read Parameter Store — notifies
# var.alarm_actions, like the queues' alarms (queues.tf). Lambda stamps a run's Errors with the
# time it started and sends them when it ends, up to the function's timeout later (the drift
# function's 15 minutes): the alarm looks at as many 5-minute periods as cover the timeout and
# one more, and fires on one.
resource "aws_cloudwatch_metric_alarm" "scheduled_errors" {
  for_each = local.scheduled

  alarm_name          = "${local.prefix}-failed-${each.key}"
  alarm_description   = "Karma: a scheduled run of the ${each.key} function (${each.value}) failed; it is not retried, the next scheduled run is: see its log group /aws/lambda/${aws_lambda_function.stage[each.key].function_name}"
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.stage[each.key].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = ceil(local.functions[each.key].timeout / 300) + 1
  datapoints_to_alarm = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
}
