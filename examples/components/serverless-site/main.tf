locals {
  site_name = var.config.site_name
}

resource "terraform_data" "site" {
  input = {
    site_url        = "https://${local.site_name}"
    distribution_id = "E${upper(substr(sha1("${var.iac_prefix}/${var.component_name}/${var.nickname}"), 0, 13))}"
    content_bucket  = "${replace(local.site_name, ".", "-")}-content"
    settings = jsonencode({
      aliases        = try(var.config.domain_aliases, [])
      api_origin     = try(var.config.api_origin, null)
      price_class    = try(var.config.price_class, "PriceClass_100")
      index_document = try(var.config.index_document, "index.html")
    })
  }
}
