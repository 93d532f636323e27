locals {
  region = try(var.config.region, "us-east-1")
  api_id = substr(sha1("${var.iac_prefix}/${var.component_name}/${var.nickname}"), 0, 10)
}

resource "terraform_data" "api" {
  input = {
    api_id       = local.api_id
    api_endpoint = "https://${local.api_id}.execute-api.${local.region}.amazonaws.com/${try(var.config.stage, "v1")}"
    api_domain   = var.config.domain_name
    routes_hash  = sha1(jsonencode(try(var.config.routes, [])))
  }
}
