resource "aws_s3_bucket" "b" {
  bucket = var.config.bucket_name
  tags   = var.config.tags
}

output "arn" {
  value = aws_s3_bucket.b.arn
}

output "ghost" {
  value = local.missing
}

output "name" {
  value = var.nickname
}

output "whole" {
  value = jsonencode(var.config)
}
