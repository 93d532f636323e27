# EFS and Neptune: what the functions in the VPC reach.

data "aws_subnet" "selected" {
  for_each = toset(var.subnet_ids)
  id       = each.value
}

locals {
  vpc_id = data.aws_subnet.selected[var.subnet_ids[0]].vpc_id
  # EFS takes one mount target per availability zone: the first given subnet of each.
  subnet_per_az = { for az, ids in { for s in data.aws_subnet.selected : s.availability_zone => s.id... } : az => sort(ids)[0] }
}

# --- EFS: the workspaces of plan and apply ---------------------------------------------------
# plan and apply keep every component's workspace in KARMA_WORK_DIR: its saved plan (written
# by plan, applied by apply: two functions, so it must be shared storage) and its Terraform
# state (shared/terraform writes a local backend, Root/terraform.tfstate). So these two mount
# one EFS access point:
#
#   <efs_mount_path>/<work_path>   the workspaces and the components' Terraform state
#
# There is no S3 alternative: nothing in the code keeps state or plans in S3. The config
# repository is not on EFS: every function that reads it fetches it into /tmp (KARMA_GIT_URL).

locals {
  create_efs = var.efs_access_point_arn == null
}

resource "aws_efs_file_system" "karma" {
  count = local.create_efs ? 1 : 0

  creation_token   = "${local.prefix}-config"
  encrypted        = true
  performance_mode = "generalPurpose"
  throughput_mode  = "elastic"

  tags = { Name = "${local.prefix}-config" }

  # It holds every component's Terraform state, and EFS has no deletion protection: a plan
  # that would destroy it (terraform destroy, or a change of name_prefix or environment, which
  # replaces it) fails instead. To remove it on purpose, take this out first.
  lifecycle {
    prevent_destroy = true
  }
}

# The workspaces hold every component's Terraform state: back them up.
resource "aws_efs_backup_policy" "karma" {
  count = local.create_efs ? 1 : 0

  file_system_id = aws_efs_file_system.karma[0].id
  backup_policy {
    status = "ENABLED"
  }
}

resource "aws_security_group" "efs" {
  count = local.create_efs ? 1 : 0

  name        = "${local.prefix}-efs"
  description = "Karma EFS: NFS from the Karma functions"
  vpc_id      = local.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "efs" {
  for_each = local.create_efs ? toset(var.lambda_security_group_ids) : toset([])

  security_group_id            = aws_security_group.efs[0].id
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  description                  = "NFS from the Karma functions"
}

resource "aws_efs_mount_target" "karma" {
  for_each = local.create_efs ? local.subnet_per_az : {}

  file_system_id  = aws_efs_file_system.karma[0].id
  subnet_id       = each.value
  security_groups = [aws_security_group.efs[0].id]
}

# plan and apply use this access point: as uid/gid 1000, below /karma.
resource "aws_efs_access_point" "karma" {
  count = local.create_efs ? 1 : 0

  file_system_id = aws_efs_file_system.karma[0].id

  posix_user {
    uid = 1000
    gid = 1000
  }

  root_directory {
    path = "/karma"
    creation_info {
      owner_uid   = 1000
      owner_gid   = 1000
      permissions = "0755"
    }
  }

  tags = { Name = "${local.prefix}-config" }
}

# No anonymous NFS, TLS only: a client needs an identity policy granting it
# elasticfilesystem:ClientMount (read) or also ClientWrite (iam.tf: plan and apply, both).
data "aws_iam_policy_document" "efs" {
  count = local.create_efs ? 1 : 0

  statement {
    sid       = "AccountPrincipalsByIdentityPolicy"
    actions   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    resources = [aws_efs_file_system.karma[0].arn]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account}:root"]
    }
  }

  statement {
    sid       = "TLSOnly"
    effect    = "Deny"
    actions   = ["*"]
    resources = [aws_efs_file_system.karma[0].arn]
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_efs_file_system_policy" "karma" {
  count = local.create_efs ? 1 : 0

  file_system_id = aws_efs_file_system.karma[0].id
  policy         = data.aws_iam_policy_document.efs[0].json
}

data "aws_efs_access_point" "existing" {
  count           = local.create_efs ? 0 : 1
  access_point_id = element(split("/", var.efs_access_point_arn), 1)
}

locals {
  efs_access_point_arn = local.create_efs ? aws_efs_access_point.karma[0].arn : var.efs_access_point_arn
  efs_file_system_arn  = local.create_efs ? aws_efs_file_system.karma[0].arn : data.aws_efs_access_point.existing[0].file_system_arn
}

# --- Neptune ----------------------------------------------------------------------------------
# The graph and lineage stores (shared/neptune), used by graph-write. Either an existing cluster
# (neptune_endpoint, neptune_iam_auth, neptune_cluster_resource_id) or, with create_neptune, one
# created here with IAM database authentication.

resource "aws_neptune_subnet_group" "karma" {
  count = var.create_neptune ? 1 : 0

  name       = "${local.prefix}-graph"
  subnet_ids = var.subnet_ids
}

resource "aws_security_group" "neptune" {
  count = var.create_neptune ? 1 : 0

  name        = "${local.prefix}-neptune"
  description = "Karma Neptune: Gremlin from the Karma functions"
  vpc_id      = local.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "neptune" {
  for_each = var.create_neptune ? toset(var.lambda_security_group_ids) : toset([])

  security_group_id            = aws_security_group.neptune[0].id
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = 8182
  to_port                      = 8182
  description                  = "Gremlin from the Karma functions"
}

resource "aws_neptune_cluster" "karma" {
  count = var.create_neptune ? 1 : 0

  cluster_identifier                  = "${local.prefix}-graph"
  engine                              = "neptune"
  iam_database_authentication_enabled = true
  storage_encrypted                   = true
  neptune_subnet_group_name           = aws_neptune_subnet_group.karma[0].name
  vpc_security_group_ids              = [aws_security_group.neptune[0].id]
  port                                = 8182
  backup_retention_period             = 35 # Neptune's maximum, as long as point-in-time recovery keeps the audit log
  deletion_protection                 = true
  skip_final_snapshot                 = false
  final_snapshot_identifier           = "${local.prefix}-graph-final"
}

resource "aws_neptune_cluster_instance" "karma" {
  count = var.create_neptune ? 1 : 0

  identifier         = "${local.prefix}-graph-1"
  cluster_identifier = aws_neptune_cluster.karma[0].id
  engine             = "neptune"
  instance_class     = var.neptune_instance_class
}

locals {
  neptune_host        = var.create_neptune ? aws_neptune_cluster.karma[0].endpoint : var.neptune_endpoint
  neptune_port        = var.create_neptune ? aws_neptune_cluster.karma[0].port : var.neptune_port
  neptune_iam         = var.create_neptune ? true : var.neptune_iam_auth
  neptune_resource_id = var.create_neptune ? aws_neptune_cluster.karma[0].cluster_resource_id : var.neptune_cluster_resource_id
  # KARMA_NEPTUNE_ENDPOINT: the websocket URL neptune.Open wants.
  neptune_url = local.neptune_host == null ? null : "wss://${local.neptune_host}:${local.neptune_port}/gremlin"
}
