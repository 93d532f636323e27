# Test module: one terraform_data whose creation runs a local-exec provisioner that fails (exit 3,
# printing config.message to stderr) while the file config.fail_file exists, and succeeds once it
# is gone. Built-in resources only: no provider is downloaded.
variable "component_name" { type = string }
variable "nickname" { type = string }
variable "iac_prefix" {
  type    = string
  default = "/iac"
}
variable "config" { type = any }

resource "terraform_data" "quota" {
  input = var.config.value

  provisioner "local-exec" {
    command = "if [ -e '${var.config.fail_file}' ]; then echo '${var.config.message}' >&2; exit 3; fi"
  }
}

output "value" {
  value = terraform_data.quota.output
}
