# Test module: an apply that fails half-way. terraform_data "network" is created first; then
# terraform_data "subnet", which depends on it, runs a local-exec provisioner that fails (exit 3)
# while the file config.fail_file exists. Built-in resources only: no provider is downloaded.
variable "component_name" { type = string }
variable "nickname" { type = string }
variable "iac_prefix" {
  type    = string
  default = "/iac"
}
variable "config" { type = any }

resource "terraform_data" "network" {
  input = var.config.value
}

resource "terraform_data" "subnet" {
  input      = terraform_data.network.output
  depends_on = [terraform_data.network]

  provisioner "local-exec" {
    command = "if [ -e '${var.config.fail_file}' ]; then exit 3; fi"
  }
}

output "value" {
  value = terraform_data.subnet.output
}
