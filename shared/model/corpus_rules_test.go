package model_test

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/model"
)

// TestCorpusProdEdges: with the default rules, the prod graph of aws-config shows the
// dependencies its modules really have (docs/config-format.md, "Reference rules"):
//   - serverless-site and serverless-api look their zone up by route53_zone_name when
//     enable_custom_domain is true ("usekarma.dev" and "usekarma.dev." are one zone);
//   - each serverless-api reads the arn of the functions of the lambda of its nickname and its
//     OpenAPI document from the s3-bucket of its nickname.
//
// Dev turns custom domains off and has no zone: no edge and nothing to report. Without the
// corpus beside the checkout it is skipped; testdata/rules covers the same rules.
func TestCorpusProdEdges(t *testing.T) {
	t.Parallel()
	root := corpusDir(t)
	res, err := model.Build(context.Background(), filepath.Join(root, "aws-config"), model.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d := diagLines(res); len(d) != 0 {
		t.Errorf("diagnostics:\n%s", strings.Join(d, "\n"))
	}
	want := []string{
		`serverless-api/demo-api -> lambda/demo-api same-nickname api-lambda "" arn`,
		`serverless-api/demo-api -> route53-zone/usekarma-dev attribute route53-zone-by-name "/route53_zone_name" zone_id`,
		`serverless-api/demo-api -> s3-bucket/demo-api same-nickname api-openapi-bucket "" bucket_name`,
		`serverless-api/karma-api -> lambda/karma-api same-nickname api-lambda "" arn`,
		`serverless-api/karma-api -> route53-zone/usekarma-dev attribute route53-zone-by-name "/route53_zone_name" zone_id`,
		`serverless-api/karma-api -> s3-bucket/karma-api same-nickname api-openapi-bucket "" bucket_name`,
		`serverless-site/adage-usekarma-dev -> route53-zone/usekarma-dev attribute route53-zone-by-name "/route53_zone_name" zone_id`,
		`serverless-site/strall-com -> route53-zone/strall-com attribute route53-zone-by-name "/route53_zone_name" zone_id`,
		`serverless-site/usekarma-dev -> route53-zone/usekarma-dev attribute route53-zone-by-name "/route53_zone_name" zone_id`,
	}
	if got := edgeLines(res.Graph, "prod"); !reflect.DeepEqual(got, want) {
		t.Errorf("prod edges:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := edgeLines(res.Graph, "dev"); len(got) != 0 {
		t.Errorf("dev edges:\n%s\nwant none", strings.Join(got, "\n"))
	}
	// The lambdas write one runtime per function, where deploy_lambda.py puts the arn the
	// serverless-api reads: those parameters are known to belong to them.
	for path, owner := range map[string]string{
		"/iac/lambda/echo/runtime":              "prod/lambda/demo-api",
		"/iac/lambda/karma-graph-query/runtime": "prod/lambda/karma-api",
		"/iac/lambda/karma-log-handler/runtime": "prod/lambda/karma-api",
	} {
		i, ok := res.Graph.SubRuntimeWriter("prod", path)
		if !ok || res.Graph.Components[i].ID != owner {
			t.Errorf("writer of %s: found=%v, want %s", path, ok, owner)
		}
	}
	waves, err := res.Graph.Waves()
	if err != nil {
		t.Fatal(err)
	}
	if len(waves) != 2 {
		t.Errorf("waves: %d, want 2 (zones, buckets and lambdas; then sites and APIs)", len(waves))
	}
}
