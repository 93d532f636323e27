# Karma on AWS: the pipeline of docs/pipeline.md as SQS queues fed by EventBridge rules, one
# Lambda function per stage (one binary, cmd/lambda, the stage chosen by KARMA_STAGE), the
# DynamoDB tables of shared/dynamo/tables.go, Neptune for the graph and lineage, EFS for the
# Terraform workspaces. The functions fetch the config repository themselves (KARMA_GIT_URL).
# See README.md in this folder.

terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}

provider "aws" {
  region = var.region # null: AWS_REGION / the shared config, as usual

  default_tags {
    tags = merge({ "karma:environment" = var.environment, "karma:managed-by" = "terraform" }, var.tags)
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.name

  # Every name starts with <name_prefix>-<environment>, e.g. "karma-prod". One account is one
  # environment, so this only keeps names readable next to other stacks in the account.
  prefix = "${var.name_prefix}-${var.environment}"

  # SQS: the queue of stage S is <queue_prefix>S (shared/sqs: Options.Prefix + name), its DLQ
  # <queue_prefix>S-dlq (sqs.DeadLetterQueueName). KARMA_QUEUE_PREFIX is this value.
  queue_prefix = "${local.prefix}-"

  # The Lambda zip built by `make lambda`: dist/karma-lambda-<arm64|amd64>.zip.
  zip_arch   = var.architecture == "arm64" ? "arm64" : "amd64"
  lambda_zip = coalesce(var.lambda_zip, "${path.module}/../dist/karma-lambda-${local.zip_arch}.zip")

  # The workspaces of plan and apply (EFS is mounted at var.efs_mount_path, see storage.tf).
  work_dir  = "${var.efs_mount_path}/${var.work_path}" # KARMA_WORK_DIR
  param_arn = "arn:${local.partition}:ssm:${local.region}:${local.account}:parameter${var.param_prefix}"

  # The stages with a queue (shared/pipeline/handler.go: StageIngest ... StageAudit; the
  # Parameter Store rule feeds ingest too), with each queue's visibility timeout:
  # at least the function's timeout (below) plus the 60 s its idempotency claim outlives a
  # function that died (cmd/lambda claimLeaseSeconds; visibility_test.go checks it); 6x for the
  # short stages, as AWS recommends for event source mappings, and 960 s for the 900 s
  # Terraform stages.
  queue_visibility = {
    resolve       = 720
    "graph-write" = 720
    plan          = 960
    apply         = 960
    audit         = 360
    ingest        = 360
  }

  # Each function's timeout (s), memory (MB) and event source mapping batch size (1 for plan
  # and apply: one Terraform run per invocation; the webhook has no queue). drift runs the
  # refresh-only plans of the environments that set drift_refresh: Terraform's limits. webhook
  # and api answer API Gateway, which waits 30 s at most (api.tf): their timeout leaves it 5 s
  # more (a cold start's init, the way in and out), so that the answer they give before their
  # deadline — a 504 problem document for a request cut off (docs/api.md) — reaches the client
  # rather than API Gateway's bare 5xx (gateway_test.go).
  sizes = {
    resolve       = { timeout = 120, memory = 1024, batch_size = 10 }
    "graph-write" = { timeout = 120, memory = 1024, batch_size = 10 }
    plan          = { timeout = 900, memory = var.terraform_memory, batch_size = 1 }
    apply         = { timeout = 900, memory = var.terraform_memory, batch_size = 1 }
    audit         = { timeout = 60, memory = 512, batch_size = 10 }
    ingest        = { timeout = 60, memory = 512, batch_size = 10 }
    reconcile     = { timeout = 300, memory = 512, batch_size = 0 }
    drift         = { timeout = 900, memory = var.terraform_memory, batch_size = 0 }
    promote       = { timeout = 120, memory = 512, batch_size = 0 }
    webhook       = { timeout = 25, memory = 512, batch_size = 0 }
    api           = { timeout = 25, memory = 1024, batch_size = 0 }
  }

  # The routing of the "karma" bus, written out from pipeline.Routes exactly as
  # eventbridge.Rules() derives it: for every stage a message type is routed to, one rule
  # matching source "karma" and exactly those detail-types (sorted), and one rule sending every
  # "karma" event to the audit queue.
  #
  #   git.pushed, parameter.changed                -> ingest
  #   change.detected                              -> resolve
  #   change.resolved, deployment.scheduled,
  #   deployment.skipped                           -> graph-write
  #   deployment.recorded                          -> plan
  #   deployment.planned, deployment.approved      -> apply
  #   deployment.applied, deployment.failed        -> resolve, graph-write
  #   change.superseded, change.rejected,
  #   change.expired                               -> resolve
  #   drift.detected                               -> graph-write
  #   everything                                   -> audit
  #
  # The ingest queue is also fed by the Parameter Store rule on the default bus (events.tf).
  # routing_test.go (go test ./terraform) fails when this and pipeline.Routes disagree.
  routed_types = {
    apply         = ["deployment.approved", "deployment.planned"]
    "graph-write" = ["change.resolved", "deployment.applied", "deployment.failed", "deployment.scheduled", "deployment.skipped", "drift.detected"]
    ingest        = ["git.pushed", "parameter.changed"]
    plan          = ["deployment.recorded"]
    resolve       = ["change.detected", "change.superseded", "change.rejected", "change.expired", "deployment.applied", "deployment.failed"]
  }
  bus_rules = merge(
    { for stage, types in local.routed_types : stage => jsonencode({ source = ["karma"], "detail-type" = types }) },
    { audit = jsonencode({ source = ["karma"] }) },
  )

  # What each function needs: the stores its stage opens (shared/app/stages.go for the SQS
  # pipeline stages, ingest included; cmd/lambda/ingest.go for reconcile (and ingest's
  # Parameter Store events), webhook.go for webhook,
  # drift.go and shared/app/drift.go for the scheduled drift check, promote.go for promote).
  # The environment (functions.tf) and the IAM policy (iam.tf) of each function are derived
  # from this table only.
  #   repo:        reads the config repository at commits: a cache clone under /tmp of
  #                KARMA_GIT_URL, fetched on demand (KARMA_GIT_*; the token's secret)
  #   terraform:   terraform binary, workspaces on EFS (KARMA_WORK_DIR)         -> VPC + EFS (rw)
  #   neptune:     graph and lineage stores (KARMA_NEPTUNE_ENDPOINT)           -> VPC: "rw"
  #                (graph-write records the graph and lineage) or "read" (api: shared/api's
  #                Lineage only reads; a read-only role cannot rewrite or drop lineage)
  #   change_sets, audit: the DynamoDB tables (read and write)
  #   seen:        the idempotency table: "rw" (claims, done markers; webhook delivery ids) or
  #                "read" (reconcile only asks whether a version was ingested; api
  #                whether a drift was recorded, for GET /drift)
  #   params:      "" | "read" | "write" on <param_prefix>
  #   describe:    ssm:DescribeParameters (the drift check and reconcile read Karma's provenance,
  #                the parameters' descriptions, with paged calls; it takes no resource restriction)
  #   queue:       fed by its stage queue (event source mapping)
  #   dlq:         dead-letters poison records itself (shared/lambda.SQSHandler)
  #   depths:      reads every stage queue's and dead-letter queue's counts for /metrics
  #                (GetQueueAttributes through the queue's RedrivePolicy; shared/sqs Counts)
  needs = {
    resolve       = { repo = true, terraform = false, neptune = "", change_sets = true, seen = "rw", audit = false, params = "read", describe = false, queue = true, dlq = true, depths = false }
    "graph-write" = { repo = true, terraform = false, neptune = "rw", change_sets = false, seen = "rw", audit = false, params = "", describe = false, queue = true, dlq = true, depths = false }
    plan          = { repo = true, terraform = true, neptune = "", change_sets = true, seen = "rw", audit = false, params = "read", describe = false, queue = true, dlq = true, depths = false }
    apply         = { repo = true, terraform = true, neptune = "", change_sets = true, seen = "rw", audit = false, params = "write", describe = false, queue = true, dlq = true, depths = false }
    audit         = { repo = false, terraform = false, neptune = "", change_sets = false, seen = "", audit = true, params = "", describe = false, queue = true, dlq = true, depths = false }
    ingest        = { repo = false, terraform = false, neptune = "", change_sets = false, seen = "rw", audit = false, params = "read", describe = false, queue = true, dlq = true, depths = false }
    reconcile     = { repo = false, terraform = false, neptune = "", change_sets = false, seen = "read", audit = false, params = "read", describe = true, queue = false, dlq = false, depths = false }
    drift         = { repo = true, terraform = true, neptune = "", change_sets = true, seen = "rw", audit = false, params = "read", describe = true, queue = false, dlq = false, depths = false }
    promote       = { repo = false, terraform = false, neptune = "", change_sets = true, seen = "", audit = false, params = "", describe = false, queue = false, dlq = false, depths = false }
    webhook       = { repo = false, terraform = false, neptune = "", change_sets = false, seen = "rw", audit = true, params = "", describe = false, queue = false, dlq = false, depths = false }
    api           = { repo = true, terraform = false, neptune = "read", change_sets = true, seen = "read", audit = true, params = "read", describe = true, queue = false, dlq = false, depths = true }
  }

  # What each function publishes to the bus: source "karma" and exactly these detail-types, the
  # message types its code builds. Its role may publish these only (iam.tf): a function that
  # could publish any type could forge a deployment.applied or a parameter.changed, which the
  # stages would act on and the audit log record as having happened. iam_test.go names the code
  # that builds each one.
  #   ingest       change.detected (workers/ingest); parameter.changed of a Parameter Store
  #                event (shared/lambda/parameterevents.go)
  #   resolve      change.resolved, deployment.scheduled, deployment.skipped; change.detected
  #                of a promotion's next environment (workers/resolve)
  #   graph-write  deployment.recorded
  #   plan         deployment.planned, deployment.failed
  #   apply        deployment.applied, deployment.failed; deployment.planned (a stale plan
  #                planned again)
  #   audit        nothing
  #   reconcile    parameter.changed (shared/trigger/reconcile.go)
  #   drift        drift.detected and the corrective change.detected (shared/drift)
  #   promote      change.detected (shared/promotion)
  #   webhook      git.pushed (shared/httpapi/webhook.go)
  #   api          change.detected (request-change, rollback, promote), deployment.approved
  #                (approve), change.rejected (reject) (shared/api)
  publishes = {
    ingest        = ["change.detected", "parameter.changed"]
    resolve       = ["change.detected", "change.resolved", "deployment.scheduled", "deployment.skipped"]
    "graph-write" = ["deployment.recorded"]
    plan          = ["deployment.failed", "deployment.planned"]
    apply         = ["deployment.applied", "deployment.failed", "deployment.planned"]
    audit         = []
    reconcile     = ["parameter.changed"]
    drift         = ["change.detected", "drift.detected"]
    promote       = ["change.detected"]
    webhook       = ["git.pushed"]
    api           = ["change.detected", "change.rejected", "deployment.approved"]
  }

  # The audit chains each function that appends to the audit log writes, when not every chain
  # (the audit function appends every message, to its component's or its change's chain).
  # shared/dynamo keys a chain's records and head CHAIN#<chain>; each append also puts its
  # message id (MSG#<id>), the chain's entry in the directory (CHAINS) and the day's (DAYS).
  #   webhook  "triggers/NN" (ignored pushes), "security/NN" (refused deliveries):
  #            audit.SpreadChain in shared/httpapi/webhook.go
  #   api      "change/<correlation id>" (the writes it accepted, beside the change's messages),
  #            "security/NN" (refused requests): shared/api/audit.go
  # iam.tf lets them put items with these partition keys only: a webhook or API function that
  # could append to a component's chain could write a deployment that did not happen, with a
  # valid hash (it reads the chain's head).
  audit_chains = {
    webhook = ["triggers", "security"]
    api     = ["change", "security"]
  }

  enabled_functions = concat(
    ["ingest", "resolve", "graph-write", "plan", "apply", "audit", "promote"],
    var.enable_ingest_function ? ["reconcile"] : [],
    var.enable_drift_function ? ["drift"] : [],
    var.enable_webhook ? ["webhook"] : [],
    var.enable_api ? ["api"] : [],
  )
  functions = { for name in local.enabled_functions : name => merge(local.needs[name], local.sizes[name], {
    in_vpc    = local.needs[name].terraform || local.needs[name].neptune != ""
    publishes = local.publishes[name]
  }) }
}
