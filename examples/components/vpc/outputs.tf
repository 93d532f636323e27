output "vpc_id" {
  value = terraform_data.vpc.output.vpc_id
}

output "private_subnet_ids" {
  value = terraform_data.vpc.output.private_subnet_ids
}

output "flow_log_group" {
  value = terraform_data.vpc.output.flow_log_group
}
