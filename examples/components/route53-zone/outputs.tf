output "zone_id" {
  value = terraform_data.zone.output.zone_id
}

output "zone_name" {
  value = terraform_data.zone.output.zone_name
}

output "name_servers" {
  value = terraform_data.zone.output.name_servers
}
