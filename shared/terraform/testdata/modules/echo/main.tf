# Test module: outputs taken from the config directly, and through a resource.
# Built-in resources only: no provider is downloaded.
variable "component_name" { type = string }
variable "nickname" { type = string }
variable "iac_prefix" {
  type    = string
  default = "/iac"
}
variable "config" { type = any }

resource "terraform_data" "size" {
  input = var.config.size
}

output "name" { value = var.config.name }
output "size" { value = terraform_data.size.output }
