# Test module: config.count terraform_data resources, then one more ("z_last") whose address
# sorts after them. Built-in resources only: no provider is downloaded.
variable "component_name" { type = string }
variable "nickname" { type = string }
variable "iac_prefix" {
  type    = string
  default = "/iac"
}
variable "config" { type = any }

resource "terraform_data" "item" {
  count = var.config.count
  input = count.index
}

resource "terraform_data" "z_last" {
  input = "last"
}
