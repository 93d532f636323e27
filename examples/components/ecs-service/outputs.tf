output "service_name" {
  value = terraform_data.service.output.service_name
}

output "service_arn" {
  value = terraform_data.service.output.service_arn
}

output "task_definition_arn" {
  value = terraform_data.service.output.task_definition_arn
}
