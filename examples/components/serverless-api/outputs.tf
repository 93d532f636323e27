output "api_id" {
  value = terraform_data.api.output.api_id
}

output "api_endpoint" {
  value = terraform_data.api.output.api_endpoint
}

output "api_domain" {
  value = terraform_data.api.output.api_domain
}
