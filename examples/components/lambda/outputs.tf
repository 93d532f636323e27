output "role_arn" {
  value = terraform_data.functions.output.role_arn
}

output "function_arns" {
  value = terraform_data.functions.output.function_arns
}

output "function_versions" {
  value = terraform_data.functions.output.function_versions
}
