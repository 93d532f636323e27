# Git push webhooks (docs/triggers.md): an HTTP API, POST /webhooks/git -> the webhook function,
# payload format 2.0 (what shared/webhook.LambdaRequest decodes). Created with enable_webhook
# only (cmd/lambda/webhook.go, KARMA_STAGE=webhook).

resource "aws_apigatewayv2_api" "webhooks" {
  count = var.enable_webhook ? 1 : 0

  name          = "${local.prefix}-webhooks"
  protocol_type = "HTTP"
  description   = "Karma: Git push webhooks"
}

resource "aws_apigatewayv2_integration" "webhook" {
  count = var.enable_webhook ? 1 : 0

  api_id                 = aws_apigatewayv2_api.webhooks[0].id
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = aws_lambda_function.stage["webhook"].invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = 30000 # the function's timeout + 5 s (main.tf, gateway_test.go)
}

resource "aws_apigatewayv2_route" "webhook" {
  count = var.enable_webhook ? 1 : 0

  api_id    = aws_apigatewayv2_api.webhooks[0].id
  route_key = "POST /webhooks/git"
  target    = "integrations/${aws_apigatewayv2_integration.webhook[0].id}"
}

resource "aws_cloudwatch_log_group" "webhooks_access" {
  count = var.enable_webhook ? 1 : 0

  name              = "/aws/apigateway/${local.prefix}-webhooks"
  retention_in_days = var.log_retention_days
}

resource "aws_apigatewayv2_stage" "default" {
  count = var.enable_webhook ? 1 : 0

  api_id      = aws_apigatewayv2_api.webhooks[0].id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_burst_limit = 50
    throttling_rate_limit  = 20
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.webhooks_access[0].arn
    format = jsonencode({
      requestId = "$context.requestId"
      ip        = "$context.identity.sourceIp"
      time      = "$context.requestTime"
      route     = "$context.routeKey"
      status    = "$context.status"
      length    = "$context.responseLength"
      latency   = "$context.integrationLatency"
      error     = "$context.integrationErrorMessage"
      gateway   = "$context.error.message"
    })
  }
}

resource "aws_lambda_permission" "webhook" {
  count = var.enable_webhook ? 1 : 0

  statement_id  = "AllowHttpApiWebhooks"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.stage["webhook"].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.webhooks[0].execution_arn}/*/POST/webhooks/git"
}

# Karma's HTTP API (docs/api.md, shared/api): every route to the api function (KARMA_STAGE=api),
# payload 2.0, IAM authorization on every route: callers sign with SigV4 and need
# execute-api:Invoke on the routes they call (read routes GET, write and approve routes POST);
# the function takes the caller's ARN from the request context as the actor. Created with
# enable_api.

resource "aws_apigatewayv2_api" "karma" {
  count = var.enable_api ? 1 : 0

  name          = "${local.prefix}-api"
  protocol_type = "HTTP"
  description   = "Karma: the HTTP API (IAM)"
}

resource "aws_apigatewayv2_integration" "api" {
  count = var.enable_api ? 1 : 0

  api_id                 = aws_apigatewayv2_api.karma[0].id
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = aws_lambda_function.stage["api"].invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = 30000 # the function's timeout + 5 s (main.tf, gateway_test.go)
}

resource "aws_apigatewayv2_route" "api" {
  count = var.enable_api ? 1 : 0

  api_id             = aws_apigatewayv2_api.karma[0].id
  route_key          = "ANY /{proxy+}"
  authorization_type = "AWS_IAM"
  target             = "integrations/${aws_apigatewayv2_integration.api[0].id}"
}

# What API Gateway answers itself never reaches the function, so only this log records it: a
# caller IAM refused (403, no security entry in the audit log), a throttled one (429), a
# function that failed or did not answer in time (5xx, integrationErrorMessage).
resource "aws_cloudwatch_log_group" "api_access" {
  count = var.enable_api ? 1 : 0

  name              = "/aws/apigateway/${local.prefix}-api"
  retention_in_days = var.log_retention_days
}

resource "aws_apigatewayv2_stage" "api" {
  count = var.enable_api ? 1 : 0

  api_id      = aws_apigatewayv2_api.karma[0].id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_burst_limit = 100
    throttling_rate_limit  = 50
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_access[0].arn
    format = jsonencode({
      requestId = "$context.requestId"
      ip        = "$context.identity.sourceIp"
      caller    = "$context.identity.userArn"
      time      = "$context.requestTime"
      route     = "$context.routeKey"
      path      = "$context.path"
      status    = "$context.status"
      length    = "$context.responseLength"
      latency   = "$context.integrationLatency"
      error     = "$context.integrationErrorMessage"
      gateway   = "$context.error.message"
    })
  }
}

resource "aws_lambda_permission" "api" {
  count = var.enable_api ? 1 : 0

  statement_id  = "AllowHttpApi"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.stage["api"].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.karma[0].execution_arn}/*/*"
}
