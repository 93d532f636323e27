locals {
  region       = try(var.config.region, "us-east-1")
  service_name = "${var.nickname}-svc"
  # A new task definition revision whenever the container settings change.
  task_def = jsonencode({
    image          = var.config.image
    container_port = try(var.config.container_port, 8080)
    cpu            = try(var.config.cpu, 256)
    memory_mb      = try(var.config.memory_mb, 512)
  })
}

resource "terraform_data" "service" {
  input = {
    service_name        = local.service_name
    service_arn         = "arn:aws:ecs:${local.region}:000000000000:service/${var.config.cluster_nickname}/${local.service_name}"
    task_definition_arn = "arn:aws:ecs:${local.region}:000000000000:task-definition/${var.nickname}:${substr(sha1(local.task_def), 0, 8)}"
    settings = jsonencode({
      desired_count     = try(var.config.desired_count, 1)
      health_check_path = try(var.config.health_check_path, "/")
      tags              = try(var.config.tags, {})
    })
  }
}
