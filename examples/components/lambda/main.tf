locals {
  region    = try(var.config.region, "us-east-1")
  functions = try(var.config.functions, {})
  names     = { for name, f in local.functions : name => "${var.nickname}-${name}" }
}

resource "terraform_data" "functions" {
  input = {
    role_arn = "arn:aws:iam::000000000000:role/${var.nickname}-lambda"
    # Network placement: an in-place change when the VPC's subnets change; no output depends on it.
    subnet_ids = try(var.config.subnet_ids, [])
    function_arns = {
      for name, full in local.names :
      name => "arn:aws:lambda:${local.region}:000000000000:function:${full}"
    }
    # The code version changes with the handler, runtime and sizing of each function.
    function_versions = {
      for name, f in local.functions :
      name => substr(sha1(jsonencode([f, try(var.config.lambda_runtime, ""), try(var.config.memory_mb, 128)])), 0, 12)
    }
  }
}
