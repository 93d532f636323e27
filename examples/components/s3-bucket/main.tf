locals {
  region      = try(var.config.region, "us-east-1")
  bucket_name = var.config.bucket_name
}

resource "terraform_data" "bucket" {
  input = {
    bucket_name                 = local.bucket_name
    bucket_arn                  = "arn:aws:s3:::${local.bucket_name}"
    bucket_regional_domain_name = "${local.bucket_name}.s3.${local.region}.amazonaws.com"
    settings = jsonencode({
      versioning          = try(var.config.versioning, false)
      block_public_access = try(var.config.block_public_access, true)
      lifecycle           = try(var.config.lifecycle, {})
      tags                = try(var.config.tags, {})
    })
  }
}
