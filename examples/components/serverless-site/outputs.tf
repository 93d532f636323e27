output "site_url" {
  value = terraform_data.site.output.site_url
}

output "distribution_id" {
  value = terraform_data.site.output.distribution_id
}

output "content_bucket" {
  value = terraform_data.site.output.content_bucket
}
