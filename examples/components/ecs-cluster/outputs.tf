output "cluster_name" {
  value = terraform_data.cluster.output.cluster_name
}

output "cluster_arn" {
  value = terraform_data.cluster.output.cluster_arn
}

output "namespace_id" {
  value = terraform_data.cluster.output.namespace_id
}
