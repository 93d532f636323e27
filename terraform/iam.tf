# One role per function, with only what its stage does (local.needs in main.tf):
#   logs        its own log group
#   VPC         network interfaces (functions in the VPC; EC2 allows no narrower resource)
#   EFS         plan and apply: mount through the access point, read and write (workspaces)
#   Git token   the functions that read the config repository: GetSecretValue on the token's
#               secret (git_token_secret_arn), if any
#   SQS         receive/delete/visibility on its own queue (the event source mapping), and, for
#               the pipeline stages, send to its own DLQ: shared/lambda dead-letters a poison
#               record itself, finding the DLQ through the queue's RedrivePolicy
#               (GetQueueUrl, GetQueueAttributes); api reads every stage queue's and DLQ's
#               counts for /metrics (GetQueueUrl, GetQueueAttributes)
#   EventBridge events:PutEvents on the karma bus of source "karma" and the detail-types the
#               function publishes (local.publishes), and no other: explicit Denies
#   DynamoDB    exactly the calls shared/dynamo makes on each table (transactions need the
#               per-item actions); Query on the indexes; reconcile and api only read the
#               idempotency table. The audit table is append-only for every role, by an
#               explicit Deny (AuditLogIsAppendOnly) that the attached policies cannot lift
#   SSM         read (GetParameter*, GetParameterHistory) under <param_prefix>; apply also writes
#               the components' <type>/<nickname>/runtime and /config (PutParameter; not the
#               account's <param_prefix>/environment binding); drift also describes
#               (DescribeParameters, which takes no resource restriction: "*")
#   Neptune     neptune-db data actions on the cluster, when it uses IAM authentication:
#               graph-write reads, writes and deletes (the graph and lineage it records); api
#               only reads (connect, ReadDataViaQuery, GetQueryStatus): it answers from the
#               lineage and must not be able to rewrite or drop it
# plan and apply additionally get var.plan_policy_arns / var.apply_policy_arns: what terraform
# needs to manage the components' own resources, which this module cannot know; drift gets
# var.plan_policy_arns too (a refresh-only plan reads what a plan reads).

locals {
  # What no function may do to the audit table (AuditLogIsAppendOnly below), nor to the change
  # sets (ChangeSetsAreNotErased). shared/dynamo's
  # AuditLog only reads (GetItem, BatchGetItem, Query) and appends (PutItem, and the Puts of
  # TransactWriteItems, each on condition the item does not exist or the chain head is the
  # one read).
  # The Neptune cluster's data, as neptune-db actions name it.
  neptune_data_arn = "arn:${local.partition}:neptune-db:${local.region}:${local.account}:${coalesce(local.neptune_resource_id, "unset")}/*"

  audit_erasing_actions = [
    "dynamodb:DeleteItem",
    "dynamodb:UpdateItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:PartiQLDelete",
    "dynamodb:PartiQLUpdate",
    "dynamodb:PartiQLInsert",
    "dynamodb:DeleteTable",
    "dynamodb:UpdateTable",
    "dynamodb:UpdateTimeToLive",
    "dynamodb:UpdateContinuousBackups",
    "dynamodb:PutResourcePolicy",
    "dynamodb:DeleteResourcePolicy",
  ]
}

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each = local.functions

  name               = "${local.prefix}-${each.key}"
  description        = "Karma stage ${each.key}"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
}

data "aws_iam_policy_document" "function" {
  for_each = local.functions

  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function[each.key].arn}:*"]
  }

  dynamic "statement" {
    for_each = each.value.in_vpc ? [1] : []
    content {
      sid = "VpcNetworkInterfaces"
      actions = [
        "ec2:CreateNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
      ]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = each.value.terraform ? [1] : []
    content {
      sid       = "EfsThroughAccessPoint"
      actions   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
      resources = [local.efs_file_system_arn]
      condition {
        test     = "StringEquals"
        variable = "elasticfilesystem:AccessPointArn"
        values   = [local.efs_access_point_arn]
      }
    }
  }

  dynamic "statement" {
    for_each = each.value.repo && var.git_token_secret_arn != null ? [1] : []
    content {
      sid       = "GitToken"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [var.git_token_secret_arn]
    }
  }

  dynamic "statement" {
    for_each = each.value.queue ? [1] : []
    content {
      sid = "OwnQueue"
      actions = [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
      ]
      resources = [aws_sqs_queue.stage[each.key].arn]
    }
  }

  dynamic "statement" {
    for_each = each.value.dlq ? [1] : []
    content {
      sid       = "OwnDeadLetterQueue"
      actions   = ["sqs:SendMessage", "sqs:GetQueueUrl"]
      resources = [aws_sqs_queue.dlq[each.key].arn]
    }
  }

  dynamic "statement" {
    for_each = each.value.depths ? [1] : []
    content {
      sid       = "QueueDepths"
      actions   = ["sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
      resources = concat([for q in aws_sqs_queue.stage : q.arn], [for q in aws_sqs_queue.dlq : q.arn])
    }
  }

  # Karma's queues carry every message once, through the bus (whose audit rule copies each to
  # the audit queue), and keep what they carry: explicit Denies that no attached policy
  # (plan_policy_arns, apply_policy_arns: PowerUserAccess allows sqs:*) can lift. What is the
  # same for every role is in the managed policy <p>-queues (below): no function sends to a
  # stage queue or the EventBridge DLQ, consumes a dead-letter queue, or purges, deletes or
  # reconfigures any queue. Here, what depends on the function: it sends to no dead-letter
  # queue but its own (shared/lambda dead-letters its poison records there): a message put in
  # another's, redriven to that stage, would be acted on — or appended to the audit log —
  # without ever passing the bus; and it consumes no stage queue but its own (audit copies and
  # the next steps of deployments would be lost).
  statement {
    sid       = "OthersDeadLettersAreNotWritten"
    effect    = "Deny"
    actions   = ["sqs:SendMessage"]
    resources = [for k, q in aws_sqs_queue.dlq : q.arn if !(each.value.dlq && k == each.key)]
  }

  statement {
    sid       = "OthersQueuesAreNotConsumed"
    effect    = "Deny"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"]
    resources = [for k, q in aws_sqs_queue.stage : q.arn if !(each.value.queue && k == each.key)]
  }

  # A function publishes to the karma bus the message types its code builds, and no other
  # (local.publishes): every stage acts on what the bus routes to it, and the audit log records
  # every event, so a type a function could publish but never builds — a webhook's
  # deployment.applied, an API's parameter.changed — would be a forged fact. EventBridge
  # authorizes each entry of PutEvents on its source and detail-type. The Denies hold whatever
  # an attached policy allows (PowerUserAccess allows events:*, and a component's module runs
  # with it in plan, apply and drift); the audit function publishes nothing.
  dynamic "statement" {
    for_each = length(each.value.publishes) > 0 ? [1] : []
    content {
      sid       = "PublishToBus"
      actions   = ["events:PutEvents"]
      resources = [aws_cloudwatch_event_bus.karma.arn]
      condition {
        test     = "StringEquals"
        variable = "events:source"
        values   = ["karma"]
      }
      condition {
        test     = "StringEquals"
        variable = "events:detail-type"
        values   = each.value.publishes
      }
    }
  }

  dynamic "statement" {
    for_each = length(each.value.publishes) > 0 ? [1] : []
    content {
      sid       = "PublishesOnlyItsOwnTypes"
      effect    = "Deny"
      actions   = ["events:PutEvents"]
      resources = [aws_cloudwatch_event_bus.karma.arn]
      condition {
        test     = "StringNotEquals"
        variable = "events:detail-type"
        values   = each.value.publishes
      }
    }
  }

  dynamic "statement" {
    for_each = length(each.value.publishes) > 0 ? [1] : []
    content {
      sid       = "PublishesOnlyAsKarma"
      effect    = "Deny"
      actions   = ["events:PutEvents"]
      resources = [aws_cloudwatch_event_bus.karma.arn]
      condition {
        test     = "StringNotEquals"
        variable = "events:source"
        values   = ["karma"]
      }
    }
  }

  dynamic "statement" {
    for_each = length(each.value.publishes) == 0 ? [1] : []
    content {
      sid       = "PublishesNothing"
      effect    = "Deny"
      actions   = ["events:PutEvents"]
      resources = [aws_cloudwatch_event_bus.karma.arn]
    }
  }

  dynamic "statement" {
    for_each = each.value.audit ? [1] : []
    content {
      sid       = "AuditTable"
      actions   = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"]
      resources = [aws_dynamodb_table.audit.arn, "${aws_dynamodb_table.audit.arn}/index/*"]
    }
  }

  # Appending (PutItem, the Puts of TransactWriteItems): the audit function to every chain; the
  # webhook and the API to their own chains only (local.audit_chains), by the partition keys
  # shared/dynamo gives what an append puts.
  dynamic "statement" {
    for_each = each.value.audit && !contains(keys(local.audit_chains), each.key) ? [1] : []
    content {
      sid       = "AuditAppend"
      actions   = ["dynamodb:PutItem"]
      resources = [aws_dynamodb_table.audit.arn]
    }
  }

  dynamic "statement" {
    for_each = each.value.audit && contains(keys(local.audit_chains), each.key) ? [1] : []
    content {
      sid       = "AuditAppendToOwnChains"
      actions   = ["dynamodb:PutItem"]
      resources = [aws_dynamodb_table.audit.arn]
      condition {
        test     = "ForAllValues:StringLike"
        variable = "dynamodb:LeadingKeys"
        values   = concat([for c in local.audit_chains[each.key] : "CHAIN#${c}/*"], ["MSG#*", "CHAINS", "DAYS"])
      }
    }
  }

  # The audit log is append-only, whatever else the role is given: an explicit Deny wins over
  # any Allow, so neither a mistake in the table above nor what plan_policy_arns,
  # apply_policy_arns attach (PowerUserAccess allows every dynamodb action; a component's
  # module could hold an aws_dynamodb_table_item) can delete, change or overwrite a record, turn
  # off deletion protection or point-in-time recovery, or put a TTL on it. The functions that
  # do not append (all but audit, webhook and api) cannot put items in it either.
  statement {
    sid       = "AuditLogIsAppendOnly"
    effect    = "Deny"
    actions   = concat(local.audit_erasing_actions, each.value.audit ? [] : ["dynamodb:PutItem"])
    resources = [aws_dynamodb_table.audit.arn]
  }

  # The change sets are the record of every change's state (its approvals, its deployments,
  # its soak): shared/dynamo's ChangeSets never deletes one and changes one only by a PutItem
  # on condition of the version it read (beside it, in the same TransactWriteItems, the Puts
  # of its pointers of the deployments applied last: shared/dynamo/changesets_applied.go, Puts
  # only, as UpdateItem is denied here). The same Deny keeps them from being deleted or
  # unprotected, and the functions that do not use them (no KARMA_CHANGE_SET_TABLE) from
  # writing them at all.
  statement {
    sid       = "ChangeSetsAreNotErased"
    effect    = "Deny"
    actions   = concat(local.audit_erasing_actions, each.value.change_sets ? [] : ["dynamodb:PutItem"])
    resources = [aws_dynamodb_table.change_sets.arn]
  }

  dynamic "statement" {
    for_each = each.value.change_sets ? [1] : []
    content {
      sid       = "ChangeSetTable"
      actions   = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:PutItem"]
      resources = [aws_dynamodb_table.change_sets.arn, "${aws_dynamodb_table.change_sets.arn}/index/*"]
    }
  }

  dynamic "statement" {
    for_each = each.value.seen != "" ? [1] : []
    content {
      sid       = "IdempotencyTable"
      actions   = each.value.seen == "rw" ? ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"] : ["dynamodb:GetItem"]
      resources = [aws_dynamodb_table.seen.arn]
    }
  }

  dynamic "statement" {
    for_each = each.value.params != "" ? [1] : []
    content {
      sid = "ReadParameters"
      actions = [
        "ssm:GetParameter",
        "ssm:GetParameters",
        "ssm:GetParametersByPath",
        "ssm:GetParameterHistory",
      ]
      resources = [local.param_arn, "${local.param_arn}/*"]
    }
  }

  dynamic "statement" {
    for_each = each.value.describe ? [1] : []
    content {
      sid       = "DescribeParameters"
      actions   = ["ssm:DescribeParameters"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = each.value.params == "write" ? [1] : []
    content {
      sid       = "WriteParameters"
      actions   = ["ssm:PutParameter"]
      resources = ["${local.param_arn}/*/*/runtime", "${local.param_arn}/*/*/config"]
    }
  }

  dynamic "statement" {
    for_each = each.value.params != "" && length(var.ssm_kms_key_arns) > 0 ? [1] : []
    content {
      sid       = "SecureStringKeys"
      actions   = concat(["kms:Decrypt"], each.value.params == "write" ? ["kms:Encrypt", "kms:GenerateDataKey"] : [])
      resources = var.ssm_kms_key_arns
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["ssm.${local.region}.amazonaws.com"]
      }
    }
  }

  dynamic "statement" {
    for_each = each.value.neptune != "" && local.neptune_iam ? [1] : []
    content {
      sid = "NeptuneData"
      actions = concat(
        ["neptune-db:connect", "neptune-db:ReadDataViaQuery", "neptune-db:GetQueryStatus"],
        each.value.neptune == "rw" ? ["neptune-db:WriteDataViaQuery", "neptune-db:DeleteDataViaQuery", "neptune-db:CancelQuery"] : [],
      )
      resources = [local.neptune_data_arn]
    }
  }

  # The lineage is recorded by graph-write only, and nobody resets the database: an explicit
  # Deny, which no attached policy (plan_policy_arns, apply_policy_arns: PowerUserAccess allows
  # neptune-db:*, and plan, apply and drift reach the cluster through the same security groups)
  # can lift. Without IAM authentication on the cluster, IAM decides nothing there.
  dynamic "statement" {
    for_each = local.neptune_iam ? [1] : []
    content {
      sid       = "LineageIsNotErased"
      effect    = "Deny"
      actions   = concat(["neptune-db:ResetDatabase"], each.value.neptune == "rw" ? [] : ["neptune-db:WriteDataViaQuery", "neptune-db:DeleteDataViaQuery"])
      resources = [local.neptune_data_arn]
    }
  }
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions

  name   = "karma-${each.key}"
  role   = aws_iam_role.function[each.key].id
  policy = data.aws_iam_policy_document.function[each.key].json
}

# What no function may do to Karma itself, whatever plan_policy_arns and apply_policy_arns
# allow (PowerUserAccess allows lambda:* and events:*, and components' modules run with it):
# replace or reconfigure a Karma function (its code is what deploys, appends to the audit log
# and records the lineage), detach or repoint its event source mapping (a stopped stage's
# messages expire unseen after 14 days), or change the rules that route every message to its
# stage and a copy to the audit queue. One managed policy, attached to every function's role:
# an explicit Deny, which no Allow lifts; it is kept out of the roles' inline policies, whose
# size IAM limits (10,240 characters a role).
# Patterns, not lists: a managed policy holds 6,144 characters. Every Karma function is named
# <p>-<stage> (the pattern covers its versions and aliases too); every rule is on the karma bus
# or, on the default bus, named <p>-…: do not give a component's function or rule such a name.
locals {
  own_functions_arn = "arn:${local.partition}:lambda:${local.region}:${local.account}:function:${local.prefix}-*"
  own_rule_arns = [
    "arn:${local.partition}:events:${local.region}:${local.account}:rule/${aws_cloudwatch_event_bus.karma.name}/*",
    "arn:${local.partition}:events:${local.region}:${local.account}:rule/${local.prefix}-*",
  ]
}

data "aws_iam_policy_document" "guard" {
  statement {
    sid    = "KarmaFunctionsAreNotChanged"
    effect = "Deny"
    actions = [
      "lambda:UpdateFunctionCode",
      "lambda:UpdateFunctionConfiguration",
      "lambda:DeleteFunction",
      "lambda:PublishVersion",
      "lambda:CreateAlias",
      "lambda:UpdateAlias",
      "lambda:DeleteAlias",
      "lambda:AddPermission",
      "lambda:RemovePermission",
      "lambda:PutFunctionConcurrency",
      "lambda:CreateFunctionUrlConfig",
      "lambda:UpdateFunctionUrlConfig",
      # The scheduled functions' retries and event age (events.tf).
      "lambda:PutFunctionEventInvokeConfig",
      "lambda:UpdateFunctionEventInvokeConfig",
      "lambda:DeleteFunctionEventInvokeConfig",
    ]
    resources = [local.own_functions_arn]
  }

  # The alarms that say a stage stalled, a message was dead-lettered or a scheduled run failed
  # (queues.tf, events.tf; every one is named <p>-…) are not deleted, silenced or rewritten.
  statement {
    sid       = "KarmaAlarmsAreKept"
    effect    = "Deny"
    actions   = ["cloudwatch:DeleteAlarms", "cloudwatch:DisableAlarmActions", "cloudwatch:PutMetricAlarm"]
    resources = ["arn:${local.partition}:cloudwatch:${local.region}:${local.account}:alarm:${local.prefix}-*"]
  }

  # Nor invoked by hand: each is invoked by its event source mapping, its schedule or API Gateway,
  # none of which needs its role's permission. A function's event is trusted as it comes: an
  # SQS batch invoking a stage would be acted on without passing the bus (no audit copy), and
  # the API takes its caller from the event (API Gateway's IAM authorizer), so an event made up
  # would approve a change as anyone, and the audit log record that they did.
  statement {
    sid       = "KarmaFunctionsAreNotInvokedDirectly"
    effect    = "Deny"
    actions   = ["lambda:InvokeFunction", "lambda:InvokeAsync", "lambda:InvokeFunctionUrl"]
    resources = [local.own_functions_arn]
  }

  statement {
    sid       = "KarmaEventSourceMappingsAreNotChanged"
    effect    = "Deny"
    actions   = ["lambda:CreateEventSourceMapping", "lambda:UpdateEventSourceMapping", "lambda:DeleteEventSourceMapping"]
    resources = ["*"]
    condition {
      test     = "ArnLike"
      variable = "lambda:FunctionArn"
      values   = [local.own_functions_arn]
    }
  }

  statement {
    sid       = "KarmaRoutingIsNotChanged"
    effect    = "Deny"
    actions   = ["events:PutRule", "events:DeleteRule", "events:DisableRule", "events:PutTargets", "events:RemoveTargets"]
    resources = local.own_rule_arns
  }

  # A parameter's history is what a deployment's lineage names (the version that caused it):
  # no function deletes a parameter under param_prefix (SSM deletes its history with it), and
  # none rebinds the account to another environment.
  statement {
    sid       = "ParameterHistoryIsKept"
    effect    = "Deny"
    actions   = ["ssm:DeleteParameter", "ssm:DeleteParameters"]
    resources = [local.param_arn, "${local.param_arn}/*"]
  }

  statement {
    sid       = "EnvironmentBindingIsKept"
    effect    = "Deny"
    actions   = ["ssm:PutParameter", "ssm:LabelParameterVersion", "ssm:UnlabelParameterVersion"]
    resources = ["${local.param_arn}/environment"]
  }

  # The stores of what Karma records outside DynamoDB: the EFS file system of the workspaces
  # (every component's Terraform state, and the saved plans) and, when created here, the Neptune
  # cluster of the graph and lineage. No function deletes them, their mount targets or access
  # point, turns off their backups, or (Neptune) changes the cluster: ModifyDBCluster would turn
  # off its deletion protection or shorten its backups.
  statement {
    sid       = "WorkspacesAreKept"
    effect    = "Deny"
    actions   = ["elasticfilesystem:DeleteFileSystem", "elasticfilesystem:DeleteMountTarget", "elasticfilesystem:PutBackupPolicy"]
    resources = [local.efs_file_system_arn]
  }

  statement {
    sid       = "WorkspacesAccessPointIsKept"
    effect    = "Deny"
    actions   = ["elasticfilesystem:DeleteAccessPoint"]
    resources = [local.efs_access_point_arn]
  }

  dynamic "statement" {
    for_each = var.create_neptune ? [1] : []
    content {
      sid       = "LineageClusterIsKept"
      effect    = "Deny"
      actions   = ["rds:DeleteDBCluster", "rds:ModifyDBCluster", "rds:DeleteDBClusterSnapshot"]
      resources = [aws_neptune_cluster.karma[0].arn, "arn:${local.partition}:rds:${local.region}:${local.account}:cluster-snapshot:${local.prefix}-graph-final"]
    }
  }

  statement {
    sid       = "KarmaBusIsNotChanged"
    effect    = "Deny"
    actions   = ["events:DeleteEventBus", "events:PutPermission", "events:RemovePermission"]
    resources = [aws_cloudwatch_event_bus.karma.arn]
  }
}

resource "aws_iam_policy" "guard" {
  name        = "${local.prefix}-guard"
  description = "Karma: what no Karma function may do to Karma itself"
  policy      = data.aws_iam_policy_document.guard.json
}

resource "aws_iam_role_policy_attachment" "guard" {
  for_each = local.functions

  role       = aws_iam_role.function[each.key].name
  policy_arn = aws_iam_policy.guard.arn
}

# What no function may do to Karma's queues, the same for every role (the Denies that depend on
# the function are in its inline policy above): a managed policy of explicit Denies attached to
# every function's role, out of the inline policies, whose size IAM limits (10,240 characters
# a role; policysize_test.go), and apart from the guard (6,144 a managed policy).
#   - No function sends to a stage queue (they publish to the bus): a message sent there
#     directly would be acted on with no copy in the audit queue; nor to the EventBridge DLQ,
#     which EventBridge fills as a service.
#   - None receives or deletes from a dead-letter queue (dead letters would be lost; an operator
#     redrives them).
#   - None purges, deletes or reconfigures a queue (retention, redrive, its policy).
data "aws_iam_policy_document" "queues" {
  statement {
    sid       = "StagesAreFedByTheBusOnly"
    effect    = "Deny"
    actions   = ["sqs:SendMessage"]
    resources = concat([for q in aws_sqs_queue.stage : q.arn], [aws_sqs_queue.events_dlq.arn])
  }

  statement {
    sid       = "DeadLettersAreNotConsumed"
    effect    = "Deny"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"]
    resources = concat([for q in aws_sqs_queue.dlq : q.arn], [aws_sqs_queue.events_dlq.arn])
  }

  statement {
    sid       = "QueuesKeepTheirMessages"
    effect    = "Deny"
    actions   = ["sqs:PurgeQueue", "sqs:DeleteQueue", "sqs:SetQueueAttributes", "sqs:AddPermission", "sqs:RemovePermission"]
    resources = concat([for q in aws_sqs_queue.stage : q.arn], [for q in aws_sqs_queue.dlq : q.arn], [aws_sqs_queue.events_dlq.arn])
  }
}

resource "aws_iam_policy" "queues" {
  name        = "${local.prefix}-queues"
  description = "Karma: what no Karma function may do to Karma's queues"
  policy      = data.aws_iam_policy_document.queues.json
}

resource "aws_iam_role_policy_attachment" "queues" {
  for_each = local.functions

  role       = aws_iam_role.function[each.key].name
  policy_arn = aws_iam_policy.queues.arn
}

# What terraform itself needs in plan and apply: the components' resources.
resource "aws_iam_role_policy_attachment" "terraform" {
  for_each = merge(
    { for arn in var.plan_policy_arns : "plan ${arn}" => { role = "plan", arn = arn } },
    { for arn in(var.enable_drift_function ? var.plan_policy_arns : []) : "drift ${arn}" => { role = "drift", arn = arn } },
    { for arn in var.apply_policy_arns : "apply ${arn}" => { role = "apply", arn = arn } },
  )

  role       = aws_iam_role.function[each.value.role].name
  policy_arn = each.value.arn
}
