# Example module: only the built-in terraform_data resource, no providers, so it plans and
# applies offline. Outputs are derived deterministically from the inputs and stand in for what a
# real module would read back from AWS.
terraform {
  required_version = ">= 1.4"
}
