# --- naming and placement -------------------------------------------------------------------

variable "name_prefix" {
  description = "First part of every name: resources are <name_prefix>-<environment>-..., e.g. karma-prod-plan. <name_prefix>-<environment> is at most 38 characters (the EventBridge rule <name_prefix>-<environment>-parameter-store-to-ingest is at most 64; a precondition in events.tf)."
  type        = string
  default     = "karma"

  validation {
    # Neptune's identifiers (<p>-graph, <p>-graph-1) take no "--" and no "-" last.
    condition     = can(regex("^[a-z](-?[a-z0-9])*$", var.name_prefix))
    error_message = "name_prefix: lower-case letters, digits and single '-' between them, starting with a letter (Neptune's identifiers take no '--' and no '-' last)."
  }
}

variable "environment" {
  description = "The environment this account is (one account = one environment), e.g. prod."
  type        = string

  validation {
    # SQS names are at most 80 characters: <name_prefix>-<environment>-graph-write-dlq.
    # Neptune's identifiers (<p>-graph, <p>-graph-1) take no "--" and no "-" last.
    condition     = can(regex("^[a-z](-?[a-z0-9])*$", var.environment)) && length(var.environment) <= 32
    error_message = "environment: lower-case letters, digits and single '-' between them, starting with a letter, at most 32 characters (Neptune's identifiers take no '--' and no '-' last)."
  }
}

variable "region" {
  description = "AWS region; null takes it from the environment (AWS_REGION, the shared config)."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource (the provider's default_tags)."
  type        = map(string)
  default     = {}
}

variable "param_prefix" {
  description = "Parameter Store prefix of Karma's parameters (KARMA_PREFIX; karma.json's \"prefix\"), e.g. /iac."
  type        = string
  default     = "/iac"

  validation {
    # At most 64 characters: it is in the IAM policies several times (every role's policy is
    # limited to 10,240 characters; policysize_test.go measures them at this length).
    condition     = can(regex("^/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", var.param_prefix)) && length(var.param_prefix) <= 64
    error_message = "param_prefix: a Parameter Store path starting with '/' and not ending with one, at most 64 characters, e.g. /iac or /karma/prod."
  }
}

# --- the Lambda functions -------------------------------------------------------------------

variable "lambda_zip" {
  description = "The zip holding the bootstrap binary (make lambda). null: ../dist/karma-lambda-<arm64|amd64>.zip next to this folder."
  type        = string
  default     = null
}

variable "architecture" {
  description = "Lambda architecture of the zip: arm64 (dist/karma-lambda-arm64.zip) or x86_64 (dist/karma-lambda-amd64.zip)."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture: arm64 or x86_64."
  }
}

variable "log_level" {
  description = "KARMA_LOG_LEVEL of every function: debug, info, warn or error."
  type        = string
  default     = "info"

  validation {
    condition     = contains(["debug", "info", "warn", "error"], var.log_level)
    error_message = "log_level: debug, info, warn or error."
  }
}

variable "log_retention_days" {
  description = "Retention of the functions' CloudWatch log groups."
  type        = number
  default     = 30
}

variable "alarm_actions" {
  description = "What is notified (e.g. SNS topic ARNs) when a dead-letter queue holds a message (a stage's DLQ, or the EventBridge delivery DLQ) or a stage queue's oldest message is over 6 hours old (queues.tf), and when a run of a scheduled function (promote, reconcile, drift) fails (events.tf). Empty: the alarms are still there, in CloudWatch."
  type        = list(string)
  default     = []
}

# --- the config repository: each function that reads it fetches it itself ------------------

variable "git_url" {
  description = "Where the config repository is fetched from (KARMA_GIT_URL): https://…, ssh://…, git@host:path. resolve, graph-write, plan and apply keep a cache clone under /tmp and fetch the commits a change names; the webhook function ignores pushes of other repositories. No credentials in the URL: a token goes in git_token_secret_arn."
  type        = string

  validation {
    condition     = length(trimspace(var.git_url)) > 0 && !can(regex("^https?://[^/]*@", var.git_url))
    error_message = "git_url: a non-empty URL without credentials (use git_token_secret_arn for an HTTPS token)."
  }
}

variable "git_branch" {
  description = "The deploy branch (KARMA_GIT_BRANCH): what a parameter change written outside Karma is built from. Pushes to deploy_branches are deployed by the webhook."
  type        = string
  default     = "main"
}

variable "git_subdir" {
  description = "The config repository's folder inside the git repository, if not its root (KARMA_GIT_SUBDIR)."
  type        = string
  default     = ""
}

variable "git_token_secret_arn" {
  description = "Secrets Manager secret holding an HTTPS access token for git_url (its SecretString is the token). The functions that read the repository get its ARN as KARMA_GIT_TOKEN_SECRET and secretsmanager:GetSecretValue on it. null: fetch without credentials."
  type        = string
  default     = null
}

variable "git_token_user" {
  description = "The basic-auth user sent with the token (KARMA_GIT_TOKEN_USER; null: x-access-token, right for GitHub; GitLab wants oauth2)."
  type        = string
  default     = null
}

variable "governance_file" {
  description = "The operator's floor of governance rules (KARMA_GOVERNANCE): a JSON file in karma.json's environments/identities shape, at a path inside the resolve function (e.g. /opt/karma/governance.json from var.governance_layer_arn). A commit's karma.json may tighten these rules, never loosen them. \"\" = none: each commit's karma.json alone governs it."
  type        = string
  default     = ""
}

variable "policies_dir" {
  description = "The operator's Rego policies (KARMA_POLICIES): a folder inside the resolve and apply functions (e.g. /opt/karma/policies from var.governance_layer_arn), evaluated beside every commit's own policies. \"\" = none."
  type        = string
  default     = ""
}

variable "governance_layer_arn" {
  description = "A Lambda layer holding governance_file and policies_dir (under /opt), attached to the resolve and apply functions; null = none."
  type        = string
  default     = null
}

variable "modules_dir" {
  description = "The Terraform modules folder inside the config repository, one folder per component type (karma.json's \"modules_dir\"): a push changing a module redeploys its components (the webhook's KARMA_WEBHOOK_MODULES_DIR). plan and apply take the modules from the commit they deploy."
  type        = string
  default     = "components"
}

# --- network (functions that reach EFS or Neptune run in the VPC) ----------------------------

variable "subnet_ids" {
  description = "Private subnets of an existing VPC for the functions that use EFS or Neptune (graph-write, plan, apply), the EFS mount targets and a created Neptune cluster. They need a route to the AWS APIs (NAT or VPC endpoints for SQS, EventBridge, DynamoDB, SSM, STS, Secrets Manager), to the Git host of git_url and, for plan/apply, to wherever Terraform gets its providers."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "subnet_ids: at least one subnet."
  }
}

variable "lambda_security_group_ids" {
  description = "Security groups of the functions' network interfaces. Existing Neptune/EFS must accept them (8182, 2049); the ones this module creates do."
  type        = list(string)

  validation {
    condition     = length(var.lambda_security_group_ids) > 0
    error_message = "lambda_security_group_ids: at least one security group."
  }
}

# --- Neptune --------------------------------------------------------------------------------

variable "create_neptune" {
  description = "Create a Neptune cluster (IAM auth enabled, one instance) instead of using an existing one."
  type        = bool
  default     = false
}

variable "neptune_endpoint" {
  description = "Existing cluster: its cluster endpoint host name (KARMA_NEPTUNE_ENDPOINT becomes wss://<host>:<port>/gremlin). Ignored when create_neptune."
  type        = string
  default     = null
}

variable "neptune_port" {
  description = "Existing cluster: its port."
  type        = number
  default     = 8182
}

variable "neptune_iam_auth" {
  description = "Existing cluster: whether it uses IAM database authentication (KARMA_NEPTUNE_IAM). Always true for a created cluster."
  type        = bool
  default     = true
}

variable "neptune_cluster_resource_id" {
  description = "Existing cluster with IAM auth: its cluster resource id (cluster-XXXX, not the identifier), for the neptune-db:* policy."
  type        = string
  default     = null
}

variable "neptune_instance_class" {
  description = "Created cluster: instance class of its one instance."
  type        = string
  default     = "db.t4g.medium"
}

# --- EFS: the Terraform workspaces of plan and apply ----------------------------------------

variable "efs_access_point_arn" {
  description = "An existing EFS access point to mount (its file system needs mount targets in subnet_ids' AZs). null: create a file system, mount targets and an access point (storage.tf)."
  type        = string
  default     = null
}

variable "efs_mount_path" {
  description = "Where plan and apply mount EFS (Lambda requires a path under /mnt/)."
  type        = string
  default     = "/mnt/config"

  validation {
    condition     = can(regex("^/mnt/[A-Za-z0-9_.-]+$", var.efs_mount_path))
    error_message = "efs_mount_path: /mnt/<name>."
  }
}

variable "work_path" {
  description = "The component workspaces under the mount (KARMA_WORK_DIR): saved plans and each component's local Terraform state."
  type        = string
  default     = "work"
}

# --- Terraform inside plan and apply ---------------------------------------------------------

variable "terraform_layer_arn" {
  description = "A Lambda layer (of var.architecture) holding the terraform binary at bin/terraform, i.e. /opt/bin/terraform in the function. Without it plan and apply fail at startup."
  type        = string
  default     = null
}

variable "terraform_path" {
  description = "KARMA_TERRAFORM of plan and apply."
  type        = string
  default     = "/opt/bin/terraform"
}

variable "terraform_env" {
  description = "Extra environment of plan and apply, inherited by terraform (e.g. TF_PLUGIN_CACHE_DIR = \"/mnt/config/plugin-cache\", a directory that must exist). HOME: Lambda sets none and terraform looks for its CLI config there. Within Lambda's 4 KB of environment variables a function (a plan over it fails)."
  type        = map(string)
  default     = { HOME = "/tmp" }
}

variable "terraform_memory" {
  description = "Memory (MB) of plan and apply: terraform and its providers run inside them."
  type        = number
  default     = 3008
}

variable "terraform_ephemeral_storage" {
  description = "/tmp size (MB) of plan and apply (terraform downloads providers through it)."
  type        = number
  default     = 4096
}

variable "plan_policy_arns" {
  description = "Policies attached to the plan function's role so terraform can refresh and plan the components' resources (e.g. ReadOnlyAccess). At most 8."
  type        = list(string)
  default     = []

  validation {
    # IAM attaches at most 10 managed policies to a role by default; <p>-guard and <p>-queues
    # take two (managedpolicies_test.go).
    condition     = length(var.plan_policy_arns) <= 8
    error_message = "plan_policy_arns: at most 8 policies (IAM attaches at most 10 managed policies to a role, and Karma attaches <name_prefix>-<environment>-guard and -queues); combine them into fewer policies."
  }
}

variable "apply_policy_arns" {
  description = "Policies attached to the apply function's role so terraform can create, change and destroy the components' resources. At most 8."
  type        = list(string)
  default     = []

  validation {
    # IAM attaches at most 10 managed policies to a role by default; <p>-guard and <p>-queues
    # take two (managedpolicies_test.go).
    condition     = length(var.apply_policy_arns) <= 8
    error_message = "apply_policy_arns: at most 8 policies (IAM attaches at most 10 managed policies to a role, and Karma attaches <name_prefix>-<environment>-guard and -queues); combine them into fewer policies."
  }
}

variable "ssm_kms_key_arns" {
  description = "Customer managed KMS keys of SecureString parameters under param_prefix (the aws/ssm key needs nothing here): key ARNs, at most 8."
  type        = list(string)
  default     = []

  validation {
    # Every role that reads parameters names each key in its policy, which IAM limits to
    # 10,240 characters (policysize_test.go measures them with this many).
    condition     = length(var.ssm_kms_key_arns) <= 8
    error_message = "ssm_kms_key_arns: at most 8 keys (each is in the IAM policy of every function that reads parameters)."
  }
}

# --- triggers: Parameter Store events, the reconcile schedule, Git webhooks ------------------

variable "enable_ingest_function" {
  description = "Create the scheduled reconcile function, which publishes the parameter.changed of the Parameter Store changes whose events EventBridge dropped (the ingest function is a pipeline stage: always created)."
  type        = bool
  default     = true
}

variable "enable_api" {
  description = "Create the API function (KARMA_STAGE=api: Karma's HTTP API, docs/api.md) and an HTTP API in front of it whose routes require IAM authorization (SigV4); the caller's ARN is the actor of every write."
  type        = bool
  default     = true
}

variable "enable_webhook" {
  description = "Create the webhook function (KARMA_STAGE=webhook) and the HTTP API in front of it (POST /webhooks/git). Needs webhook_secret_arn."
  type        = bool
  default     = true
}

variable "webhook_secret_arn" {
  description = "Secrets Manager secret holding the webhook secrets as JSON ({\"github:owner/repo\": \"...\", \"gitlab:*\": \"...\"}, as KARMA_WEBHOOK_SECRETS). Read at deploy time into the function's environment, which Lambda limits to 4 KB with its other variables (a plan over it fails, saying the room left). Required with enable_webhook."
  type        = string
  default     = null
}

variable "deploy_branches" {
  description = "Branches whose pushes deploy (karma serve --branch), given to the webhook function as KARMA_BRANCHES (comma-separated)."
  type        = list(string)
  default     = ["main"]

  # KARMA_BRANCHES is the list joined with ",", and the webhook takes an empty one for main.
  validation {
    condition     = length(var.deploy_branches) > 0 && length([for b in var.deploy_branches : b if !can(regex("^[^,\\s]+$", b))]) == 0
    error_message = "deploy_branches: at least one branch name, each without commas or white space (an empty list would deploy every push to main: the webhook function's default)."
  }
}

variable "auto_approve" {
  description = "Changes started by pushes and parameter events are applied without a review step (KARMA_AUTO_APPROVE). With false, planned deployments are held by the apply stage until a deployment.approved event arrives; nothing in this repository publishes one in AWS (the CLI runs the pipeline on its embedded stores only)."
  type        = bool
  default     = true
}

variable "enable_drift_function" {
  description = "Create the drift function (KARMA_STAGE=drift) and its schedule: the drift check of this environment (docs/drift.md). It runs in the VPC with the workspaces' EFS and the terraform layer, for the refresh-only plans of environments that set drift_refresh."
  type        = bool
  default     = true
}

variable "drift_schedule" {
  description = "How often the drift function runs (EventBridge schedule expression)."
  type        = string
  default     = "rate(1 hour)"

  validation {
    condition     = can(regex("^(rate\\((1 (minute|hour|day)|([2-9]|[1-9][0-9]+) (minutes|hours|days))\\)|cron\\([^ ()]+( [^ ()]+){5}\\))$", var.drift_schedule))
    error_message = "drift_schedule: \"rate(<n> <unit>)\", the unit minute, hour or day, plural when n is over 1 (\"rate(1 hour)\", \"rate(5 minutes)\"), or \"cron(<6 fields>)\" (EventBridge refuses anything else, at apply)."
  }
}

variable "promote_schedule" {
  description = "How often the promote function starts the promotions whose soak is over (EventBridge schedule expression): a promotion starts at most this late."
  type        = string
  default     = "rate(1 minute)"

  validation {
    condition     = can(regex("^(rate\\((1 (minute|hour|day)|([2-9]|[1-9][0-9]+) (minutes|hours|days))\\)|cron\\([^ ()]+( [^ ()]+){5}\\))$", var.promote_schedule))
    error_message = "promote_schedule: \"rate(<n> <unit>)\", the unit minute, hour or day, plural when n is over 1 (\"rate(1 hour)\", \"rate(5 minutes)\"), or \"cron(<6 fields>)\" (EventBridge refuses anything else, at apply)."
  }
}

variable "reconcile_schedule" {
  description = "How often the reconcile function compares Parameter Store with what was ingested (EventBridge schedule expression)."
  type        = string
  default     = "rate(5 minutes)"

  validation {
    condition     = can(regex("^(rate\\((1 (minute|hour|day)|([2-9]|[1-9][0-9]+) (minutes|hours|days))\\)|cron\\([^ ()]+( [^ ()]+){5}\\))$", var.reconcile_schedule))
    error_message = "reconcile_schedule: \"rate(<n> <unit>)\", the unit minute, hour or day, plural when n is over 1 (\"rate(1 hour)\", \"rate(5 minutes)\"), or \"cron(<6 fields>)\" (EventBridge refuses anything else, at apply)."
  }
}
