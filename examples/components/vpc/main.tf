locals {
  cidr     = var.config.cidr
  az_count = try(var.config.az_count, 2)
  seed     = "${var.iac_prefix}/${var.component_name}/${var.nickname}"

  # vpc_id depends on the CIDR only; subnets on the CIDR and the AZ count; the flow log group on
  # its (optional) configured name. Changing flow_logs.retention_days or tags changes no output.
  vpc_id = "vpc-${substr(sha1("${local.seed}|${local.cidr}"), 0, 17)}"
  private_subnet_ids = [
    for i in range(local.az_count) :
    "subnet-${substr(sha1("${local.vpc_id}|${cidrsubnet(local.cidr, 4, i + 8)}"), 0, 17)}"
  ]
  flow_log_group = try(var.config.flow_logs.log_group_name, "/aws/vpc/flow-logs/${var.nickname}")
}

resource "terraform_data" "vpc" {
  input = {
    vpc_id             = local.vpc_id
    private_subnet_ids = local.private_subnet_ids
    flow_log_group     = local.flow_log_group
    settings = jsonencode({
      single_nat_gateway = try(var.config.single_nat_gateway, false)
      flow_logs          = try(var.config.flow_logs, {})
      tags               = try(var.config.tags, {})
    })
  }
}
