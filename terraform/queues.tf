# One standard queue per stage, <prefix><stage>, each with its dead-letter queue
# <prefix><stage>-dlq, exactly as shared/sqs EnsureQueues creates them in tests:
#   DLQ:   message_retention_seconds = 1209600 (14 days, SQS's maximum)
#   queue: redrive_policy = {deadLetterTargetArn, maxReceiveCount = 5 (queue.DefaultMaxReceives)},
#          visibility timeout >= the function's timeout (local.queue_visibility),
#          message_retention_seconds = 1209600 too (shared/sqs leaves SQS's default, 4 days)
# A message nothing receives — its stage stopped: the event source mapping disabled (by hand,
# or by Lambda when the role cannot read the queue), the function's concurrency at 0 — is
# deleted by SQS when its retention ends, without passing through the DLQ: with the default 4
# days an audit copy or a deployment's next step would be gone after a long weekend. So every
# stage queue keeps its messages as long as SQS allows, and an alarm (below) says when its
# oldest message is older than a working stage leaves one. A message moved to the DLQ keeps
# its first enqueue time: it expires there 14 days after it was first sent.
# The Lambda runtime (shared/lambda) sends poison messages to the DLQ itself at once, with the
# reason as message attributes; SQS moves the rest after 5 receives. `karma dlq list | redrive`
# reads the DLQ named by the queue's RedrivePolicy.

resource "aws_sqs_queue" "dlq" {
  for_each = local.queue_visibility

  name                      = "${local.queue_prefix}${each.key}-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "stage" {
  for_each = local.queue_visibility

  name                       = "${local.queue_prefix}${each.key}"
  visibility_timeout_seconds = each.value
  message_retention_seconds  = 1209600 # 14 days, SQS's maximum, as the DLQ's (below)
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq[each.key].arn
    maxReceiveCount     = 5
  })
}

# Only its own queue may use a DLQ (declared apart: the queue refers to the DLQ already).
resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  for_each = local.queue_visibility

  queue_url = aws_sqs_queue.dlq[each.key].id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.stage[each.key].arn]
  })
}

# Who may send to each stage queue: the EventBridge rules that target it (events.tf), checked
# with aws:SourceArn. Every stage is fed by its rule on the karma bus; ingest also by the
# Parameter Store rule on the default bus.
locals {
  queue_sources = { for stage, rule in aws_cloudwatch_event_rule.stage : stage => concat(
    [rule.arn],
    stage == "ingest" ? [aws_cloudwatch_event_rule.parameter_store.arn] : [],
  ) }
}

data "aws_iam_policy_document" "queue" {
  for_each = local.queue_sources

  statement {
    sid       = "EventBridgeRule"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.stage[each.key].arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = each.value
    }
  }
}

resource "aws_sqs_queue_policy" "stage" {
  for_each = local.queue_sources

  queue_url = aws_sqs_queue.stage[each.key].id
  policy    = data.aws_iam_policy_document.queue[each.key].json
}

# Events EventBridge could not deliver to a stage queue (after its 24 h of retries, or at once
# when a queue policy refuses them) or to a scheduled function (after its retry_policy, events.tf)
# land here instead of being dropped.
resource "aws_sqs_queue" "events_dlq" {
  name                      = "${local.queue_prefix}eventbridge-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
}

locals {
  # Every rule with a target: the stage queues' and the schedules'.
  events_dlq_sources = concat(
    flatten(values(local.queue_sources)),
    [aws_cloudwatch_event_rule.promote.arn],
    aws_cloudwatch_event_rule.reconcile[*].arn,
    aws_cloudwatch_event_rule.drift[*].arn,
  )
}

data "aws_iam_policy_document" "events_dlq" {
  statement {
    sid       = "EventBridgeDeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events_dlq.arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = local.events_dlq_sources
    }
  }
}

resource "aws_sqs_queue_policy" "events_dlq" {
  queue_url = aws_sqs_queue.events_dlq.id
  policy    = data.aws_iam_policy_document.events_dlq.json
}

# A stage stalled: its oldest message is older than a working stage leaves one (5 receives of
# at most the visibility timeout each, then the DLQ: under 1.5 h), and SQS deletes it 14 days
# after it was sent. Notifies var.alarm_actions, like the dead-letter alarms.
locals {
  stalled_after_seconds = 21600 # 6 h: 13.75 days left to start the stage again
}

resource "aws_cloudwatch_metric_alarm" "stalled" {
  for_each = aws_sqs_queue.stage

  alarm_name          = "${local.prefix}-stalled-${each.key}"
  alarm_description   = "Karma: the ${each.key} stage has left a message unprocessed in ${each.value.name} for over ${local.stalled_after_seconds / 3600} h (SQS deletes it 14 days after it was sent): is its event source mapping enabled, its function running?"
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = each.value.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = local.stalled_after_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
}

# A message in a dead-letter queue is work the pipeline did not do: a stage's poison or
# exhausted message (`karma dlq list`), or an event EventBridge could not deliver to a stage
# queue — which nothing of Karma reads. Each DLQ has an alarm, notifying var.alarm_actions.
resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  for_each = merge(
    { for stage, q in aws_sqs_queue.dlq : stage => q.name },
    { eventbridge = aws_sqs_queue.events_dlq.name },
  )

  alarm_name          = "${local.prefix}-dead-letters-${each.key}"
  alarm_description   = "Karma: ${each.key == "eventbridge" ? "events EventBridge could not deliver to a stage queue or scheduled runs it could not deliver to their function" : "messages the ${each.key} stage could not process (karma dlq list)"} are in ${each.value}"
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
}
