# Test module: reads a config whose db.password and urls[1] Karma passes as sensitive values.
# Built-in resources only: no provider is downloaded.
variable "component_name" { type = string }
variable "nickname" { type = string }
variable "iac_prefix" {
  type    = string
  default = "/iac"
}
variable "config" { type = any }

resource "terraform_data" "db" {
  input = var.config.db.password
}

# for_each over a part of the config next to a sensitive value: only the value is sensitive.
resource "terraform_data" "tag" {
  for_each = var.config.tags
  input    = each.value
}

output "password_sha256" { value = sha256(var.config.db.password) }
output "url_length" { value = length(var.config.urls[1]) }
output "first_url" { value = var.config.urls[0] }
output "host" { value = var.config.db.host }
output "tags" { value = keys(terraform_data.tag) }
