output "bucket_name" {
  value = terraform_data.bucket.output.bucket_name
}

output "bucket_arn" {
  value = terraform_data.bucket.output.bucket_arn
}

output "bucket_regional_domain_name" {
  value = terraform_data.bucket.output.bucket_regional_domain_name
}
