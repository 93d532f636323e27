# Test module: one terraform_data whose creation runs a local-exec provisioner that touches
# config.started_file (when set) and then sleeps config.sleep seconds, so a test can cancel an
# apply while it is running. Built-in resources only: no provider is downloaded.
variable "component_name" { type = string }
variable "nickname" { type = string }
variable "iac_prefix" {
  type    = string
  default = "/iac"
}
variable "config" { type = any }

resource "terraform_data" "slow" {
  input = var.config.value

  provisioner "local-exec" {
    command = "${try(var.config.started_file, "") == "" ? "" : "touch '${var.config.started_file}' && "}exec sleep ${try(var.config.sleep, 0)}"
  }
}

output "value" {
  value = terraform_data.slow.output
}
