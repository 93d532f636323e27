locals {
  region       = try(var.config.region, "us-east-1")
  cluster_name = "${var.nickname}-${substr(sha1("${var.iac_prefix}/${var.component_name}/${var.nickname}"), 0, 8)}"
  namespace    = try(var.config.service_discovery_namespace, "${var.nickname}.internal")
  # The namespace is private to a VPC: it changes when the VPC does.
  vpc_id = try(var.config.service_discovery_vpc_id, "")
}

resource "terraform_data" "cluster" {
  input = {
    cluster_name = local.cluster_name
    cluster_arn  = "arn:aws:ecs:${local.region}:000000000000:cluster/${local.cluster_name}"
    namespace_id = "ns-${substr(sha1("${local.namespace}|${local.vpc_id}"), 0, 16)}"
    settings = jsonencode({
      container_insights = try(var.config.container_insights, false)
      capacity_providers = try(var.config.capacity_providers, ["FARGATE"])
      tags               = try(var.config.tags, {})
    })
  }
}
