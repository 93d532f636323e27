# Inputs every Karma component module receives. Karma passes the component type, its nickname,
# the Parameter Store prefix and the resolved config (base layer, extends parent and environment
# file merged; "${<type>/<nickname>.runtime.<key>}" references already substituted).

variable "component_name" {
  description = "Component type (\"ecs-cluster\")."
  type        = string
}

variable "nickname" {
  description = "Component nickname, unique per type within an environment."
  type        = string
}

variable "iac_prefix" {
  description = "Parameter Store prefix, e.g. /iac."
  type        = string
  default     = "/iac"
}

variable "config" {
  description = "The resolved config object of this component."
  type        = any
}
