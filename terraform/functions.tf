# One Lambda function per stage, all from the same zip (make lambda: the bootstrap binary of
# cmd/lambda for provided.al2023), the stage chosen by KARMA_STAGE. What each one needs is the
# table local.needs in main.tf; the environment below is what the binary (cmd/lambda, building
# everything through shared/app from shared/config) reads, every store on AWS by default:
#
#   every function   KARMA_STAGE, KARMA_EVENT_BUS, KARMA_PREFIX, KARMA_LOG_LEVEL
#   SQS stages       KARMA_QUEUE_PREFIX (to find a queue's DLQ)
#   api              KARMA_QUEUE_PREFIX too (the queues' depths for /metrics)
#   the repository   KARMA_GIT_URL, KARMA_GIT_BRANCH; if set KARMA_GIT_SUBDIR, KARMA_GIT_TOKEN_USER
#   (resolve, graph- and KARMA_GIT_TOKEN_SECRET (the token's secret, which shared/app fetches
#   write, plan,     into a 0600 file when the repository is first opened). Each keeps a cache
#   apply, drift,    clone under /tmp/karma (KARMA_CACHE_DIR's default) and fetches the commits
#   api)             a change names.
#   audit            KARMA_AUDIT_TABLE
#   resolve          KARMA_CHANGE_SET_TABLE, KARMA_IDEMPOTENCY_TABLE, KARMA_GOVERNANCE and
#                    KARMA_POLICIES (the operator's floor and policies; "" = none)
#   graph-write      KARMA_IDEMPOTENCY_TABLE, KARMA_NEPTUNE_ENDPOINT, KARMA_NEPTUNE_IAM
#   plan, apply      KARMA_WORK_DIR, KARMA_TERRAFORM, KARMA_CHANGE_SET_TABLE,
#                    KARMA_IDEMPOTENCY_TABLE (+ var.terraform_env, for terraform itself);
#                    apply also KARMA_POLICIES
#   ingest,          KARMA_ENV (this account's environment: its Parameter Store events),
#   reconcile        KARMA_AUTO_APPROVE, KARMA_IDEMPOTENCY_TABLE
#   drift            the repository, KARMA_ENV, KARMA_AUTO_APPROVE, KARMA_CHANGE_SET_TABLE,
#                    KARMA_IDEMPOTENCY_TABLE, and plan's KARMA_WORK_DIR and KARMA_TERRAFORM (the
#                    refresh-only plans of environments that set drift_refresh run in the
#                    workspaces on EFS)
#   promote          KARMA_CHANGE_SET_TABLE
#   webhook          KARMA_WEBHOOK_SECRETS, KARMA_BRANCHES, KARMA_WEBHOOK_MODULES_DIR,
#                    KARMA_AUTO_APPROVE, KARMA_IDEMPOTENCY_TABLE, KARMA_AUDIT_TABLE,
#                    KARMA_GIT_URL (which repository's pushes it takes), KARMA_GIT_SUBDIR if set
# terraform/env_test.go (go test ./terraform) checks this against the code path of each stage.
#
# The SQS pipeline stages (ingest, resolve, graph-write, plan, apply, audit) are fed by event
# source mappings (ingest's queue takes git.pushed and parameter.changed from the karma bus and
# the Parameter Store Change events of the default bus, which its Lambda adapter turns into
# parameter.changed: shared/lambda/parameterevents.go); besides them cmd/lambda serves these
# entry points:
#   - reconcile (KARMA_STAGE=reconcile): invoked by the schedule in events.tf, publishes the
#     parameter.changed of the versions whose events EventBridge dropped (trigger.Reconciler);
#   - drift (KARMA_STAGE=drift): invoked by its schedule in events.tf, the drift check of this
#     account's environment (docs/drift.md), publishing drift.detected and corrective changes;
#   - promote (KARMA_STAGE=promote): invoked by the schedule in events.tf, starts the next
#     environment of every change whose soak is over (promotion.Start);
#   - webhook (KARMA_STAGE=webhook): POST /webhooks/git behind the HTTP API (api.tf). It reads
#     no repository (cmd/lambda/webhook.go): a push whose payload is truncated is queued as
#     truncated, and resolve diffs before..after in its cache of the repository.
#
# Terraform inside plan and apply: a Lambda layer (var.terraform_layer_arn) with the terraform
# binary at bin/terraform, i.e. /opt/bin/terraform, named by KARMA_TERRAFORM. The modules come
# from the commit being deployed (the repository cache); the workspaces, with each component's
# saved plan and Terraform state, are on EFS (storage.tf). `terraform init` in a workspace
# downloads the component's providers, so those functions need a route to the registry (or a
# mirror set up through var.terraform_env).

resource "aws_cloudwatch_log_group" "function" {
  for_each = local.functions

  name              = "/aws/lambda/${local.prefix}-${each.key}"
  retention_in_days = var.log_retention_days
}

# The webhook secrets, read at deploy time (a missing webhook_secret_arn fails the function's
# precondition below). The value ends up in the function's configuration and in the Terraform
# state: keep the state encrypted and access to both restricted.
data "aws_secretsmanager_secret_version" "webhook" {
  count     = var.enable_webhook && var.webhook_secret_arn != null ? 1 : 0
  secret_id = var.webhook_secret_arn
}

locals {
  # Every variable of each function but the webhook secrets (added below, sensitive).
  function_env_public = { for name, f in local.functions : name => merge(
    {
      KARMA_STAGE     = name
      KARMA_EVENT_BUS = aws_cloudwatch_event_bus.karma.name
      KARMA_PREFIX    = var.param_prefix
      KARMA_LOG_LEVEL = var.log_level
    },
    f.dlq || f.depths ? { KARMA_QUEUE_PREFIX = local.queue_prefix } : {},
    f.audit ? { KARMA_AUDIT_TABLE = aws_dynamodb_table.audit.name } : {},
    f.change_sets ? { KARMA_CHANGE_SET_TABLE = aws_dynamodb_table.change_sets.name } : {},
    f.seen != "" ? { KARMA_IDEMPOTENCY_TABLE = aws_dynamodb_table.seen.name } : {},
    contains(["ingest", "reconcile", "drift"], name) ? { KARMA_ENV = var.environment, KARMA_AUTO_APPROVE = tostring(var.auto_approve) } : {},
    f.repo ? merge(
      { KARMA_GIT_URL = var.git_url, KARMA_GIT_BRANCH = var.git_branch },
      var.git_subdir == "" ? {} : { KARMA_GIT_SUBDIR = var.git_subdir },
      var.git_token_user == null ? {} : { KARMA_GIT_TOKEN_USER = var.git_token_user },
      var.git_token_secret_arn == null ? {} : { KARMA_GIT_TOKEN_SECRET = var.git_token_secret_arn },
    ) : {},
    f.neptune != "" ? {
      KARMA_NEPTUNE_ENDPOINT = coalesce(local.neptune_url, "unset")
      KARMA_NEPTUNE_IAM      = tostring(local.neptune_iam)
    } : {},
    f.terraform ? merge(var.terraform_env, {
      KARMA_WORK_DIR  = local.work_dir
      KARMA_TERRAFORM = var.terraform_path
    }) : {},
    # The operator's governance floor and policies (outside the config repository): files in
    # the functions' filesystem, typically a layer (var.governance_layer_arn) under /opt.
    contains(["resolve"], name) ? { KARMA_GOVERNANCE = var.governance_file } : {},
    contains(["resolve", "apply"], name) ? { KARMA_POLICIES = var.policies_dir } : {},
    name == "webhook" ? merge({
      KARMA_AUTO_APPROVE        = tostring(var.auto_approve)
      KARMA_BRANCHES            = join(",", var.deploy_branches)
      KARMA_GIT_URL             = var.git_url     # a push of another repository is ignored
      KARMA_WEBHOOK_MODULES_DIR = var.modules_dir # relative to the repository: which pushed paths are modules
    }, var.git_subdir == "" ? {} : { KARMA_GIT_SUBDIR = var.git_subdir }) : {},
  ) }
  function_env = { for name, env in local.function_env_public : name => merge(env, name == "webhook" ? {
    KARMA_WEBHOOK_SECRETS = sensitive(one(data.aws_secretsmanager_secret_version.webhook[*].secret_string))
  } : {}) }

  # Lambda refuses, at apply, a function whose environment variables take more than 4 KB,
  # measured as the JSON of the variables ({"KARMA_STAGE":"plan",...}, keys included) in bytes:
  # `terraform apply` would stop half-way, the function not created or not updated. What goes
  # into it is not bounded by the variables alone (the webhook secrets, one per repository, are
  # read from Secrets Manager; terraform_env is any map), so each function's is measured at
  # plan and refused by a precondition below. The endpoint of a Neptune cluster created here
  # is known only after apply: it is measured as its longest, <cluster>.cluster-<12
  # characters>.<region>.neptune.<dns suffix>. Bytes: base64 holds 3 bytes in every 4
  # characters, less its padding. jsonencode writes <, > and & as 6 bytes each where Lambda may
  # count 1: never less than Lambda counts.
  lambda_env_limit = 4096
  function_env_measured = { for name, env in local.function_env : name => merge(env,
    contains(keys(env), "KARMA_NEPTUNE_ENDPOINT") && var.create_neptune ? {
      KARMA_NEPTUNE_ENDPOINT = "wss://${one(aws_neptune_cluster.karma[*].cluster_identifier)}.cluster-xxxxxxxxxxxx.${local.region}.neptune.${data.aws_partition.current.dns_suffix}:${local.neptune_port}/gremlin"
  } : {}) }
  function_env_bytes = { for name, env in local.function_env_measured : name =>
    length(base64encode(jsonencode(env))) / 4 * 3 - length(regexall("=", base64encode(jsonencode(env))))
  }
  # The same without the webhook secrets (not sensitive: the error message can say it).
  function_env_public_bytes = { for name, env in local.function_env_measured : name =>
    length(base64encode(jsonencode({ for k, v in env : k => v if k != "KARMA_WEBHOOK_SECRETS" }))) / 4 * 3 -
    length(regexall("=", base64encode(jsonencode({ for k, v in env : k => v if k != "KARMA_WEBHOOK_SECRETS" }))))
  }
}

resource "aws_lambda_function" "stage" {
  for_each = local.functions

  function_name    = "${local.prefix}-${each.key}"
  description      = "Karma stage ${each.key} (cmd/lambda, KARMA_STAGE=${each.key})"
  role             = aws_iam_role.function[each.key].arn
  filename         = local.lambda_zip
  source_code_hash = filebase64sha256(local.lambda_zip)
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  timeout          = each.value.timeout
  memory_size      = each.value.memory
  layers = concat(
    each.value.terraform && var.terraform_layer_arn != null ? [var.terraform_layer_arn] : [],
    contains(["resolve", "apply"], each.key) && var.governance_layer_arn != null ? [var.governance_layer_arn] : [],
  )

  ephemeral_storage {
    size = each.value.terraform ? var.terraform_ephemeral_storage : 512
  }

  environment {
    variables = local.function_env[each.key]
  }

  dynamic "vpc_config" {
    for_each = each.value.in_vpc ? [1] : []
    content {
      subnet_ids         = var.subnet_ids
      security_group_ids = var.lambda_security_group_ids
    }
  }

  # The workspaces (plan writes the saved plan apply applies, and the components' state).
  dynamic "file_system_config" {
    for_each = each.value.terraform ? [1] : []
    content {
      arn              = local.efs_access_point_arn
      local_mount_path = var.efs_mount_path
    }
  }

  lifecycle {
    precondition {
      condition     = each.value.neptune == "" || local.neptune_url != null
      error_message = "graph-write needs Neptune: set neptune_endpoint (an existing cluster) or create_neptune = true."
    }
    precondition {
      condition     = each.value.neptune == "" || local.neptune_url == null || !local.neptune_iam || var.create_neptune || var.neptune_cluster_resource_id != null
      error_message = "An existing Neptune cluster with IAM auth needs neptune_cluster_resource_id (for the neptune-db policy)."
    }
    precondition {
      condition     = each.key != "webhook" || var.webhook_secret_arn != null
      error_message = "enable_webhook needs webhook_secret_arn."
    }
    precondition {
      condition     = local.function_env_bytes[each.key] <= local.lambda_env_limit
      error_message = each.key == "webhook" ? "The webhook function's environment variables would be over Lambda's quota of 4 KB (${local.lambda_env_limit} bytes, as the JSON of the variables, keys included; it cannot be raised): the variables but KARMA_WEBHOOK_SECRETS take ${local.function_env_public_bytes[each.key]} bytes, which leaves ${local.lambda_env_limit - local.function_env_public_bytes[each.key] - 27} for the webhook secrets of webhook_secret_arn, as a JSON string (each \" and \\ counting 2): fewer or shorter entries (one \"<provider>:*\" secret covers every repository of a provider), or shorter git_url, git_subdir, modules_dir, deploy_branches." : "The ${each.key} function's environment variables take ${local.function_env_public_bytes[each.key]} bytes, over Lambda's quota of 4 KB (${local.lambda_env_limit} bytes, as the JSON of the variables, keys included; it cannot be raised): shorten what goes into them (terraform_env, git_url, git_branch, git_subdir, governance_file, policies_dir, efs_mount_path, work_path, terraform_path)."
    }
  }

  # The log group first (else Lambda creates one without retention); the EFS mount targets
  # before a function mounts the file system; the role's policies before the function runs.
  depends_on = [
    aws_cloudwatch_log_group.function,
    aws_efs_mount_target.karma,
    aws_iam_role_policy.function,
    aws_iam_role_policy_attachment.guard,
    aws_iam_role_policy_attachment.queues,
  ]
}

check "terraform_layer" {
  assert {
    condition     = var.terraform_layer_arn != null
    error_message = "terraform_layer_arn is not set: plan and apply will find no terraform binary at ${var.terraform_path} and fail at startup."
  }
}

# Each stage function reads its own queue; failed records are reported one by one
# (shared/lambda.SQSHandler returns partial batch responses).
resource "aws_lambda_event_source_mapping" "stage" {
  for_each = { for name, f in local.functions : name => f if f.queue }

  event_source_arn        = aws_sqs_queue.stage[each.key].arn
  function_name           = aws_lambda_function.stage[each.key].arn
  batch_size              = each.value.batch_size
  function_response_types = ["ReportBatchItemFailures"]
  enabled                 = true
}
