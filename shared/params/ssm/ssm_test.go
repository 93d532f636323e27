package ssm_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsssm "github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/params/paramstest"
	"github.com/usekarma/karma/shared/params/ssm"
	"github.com/usekarma/karma/shared/pipeline"
)

// endpointEnv names a moto (or LocalStack) server to run the suite against, e.g.
// KARMA_TEST_MOTO_ENDPOINT=http://127.0.0.1:5000 after `moto_server -H 127.0.0.1 -p 5000`.
const endpointEnv = "KARMA_TEST_MOTO_ENDPOINT"

func newStore(t *testing.T) *ssm.Store {
	t.Helper()
	endpoint := os.Getenv(endpointEnv)
	if endpoint == "" {
		t.Skipf("%s is not set: start `moto_server -H 127.0.0.1 -p 5000` (pip install 'moto[server]==5.2.5') "+
			"and set %s=http://127.0.0.1:5000 to run the SSM store against it", endpointEnv, endpointEnv)
	}
	s, err := ssm.NewFromConfig(t.Context(), endpoint,
		config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
		// Keep the test hermetic: no shared config or credentials files from the developer.
		config.WithSharedConfigFiles([]string{}),
		config.WithSharedCredentialsFiles([]string{}),
	)
	if err != nil {
		t.Fatalf("NewFromConfig: %v", err)
	}
	return s
}

func TestSSMConformance(t *testing.T) {
	t.Parallel()
	newStore(t) // skips the whole suite when no server is configured
	paramstest.Run(t, func(t *testing.T) params.Store { return newStore(t) })
}

func TestNotFoundErrorUnwrapsToSDKError(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	_, err := s.Get(t.Context(), "/karma-ssm-test/definitely/missing")
	var nf *ssm.NotFoundError
	var sdk *types.ParameterNotFound
	if !errors.As(err, &nf) || !errors.As(err, &sdk) || !errors.Is(err, params.ErrNotFound) {
		t.Fatalf("Get(missing) = %v; want *ssm.NotFoundError, *types.ParameterNotFound and params.ErrNotFound", err)
	}
}

// Put's Description and Tier reach SSM: Get does not return them (by design), so a plain SDK
// client reads them back with DescribeParameters.
func TestPutSendsDescriptionAndTier(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	base := fmt.Sprintf("/karma-ssm-test/%d", time.Now().UnixNano())
	tests := []struct {
		name, value, tier string
	}{
		{base + "/small/config", "small", string(types.ParameterTierStandard)},
		{base + "/big/config", strings.Repeat("b", 5000), string(types.ParameterTierAdvanced)},
	}
	client := awsssm.New(awsssm.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(os.Getenv(endpointEnv)),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	for _, tc := range tests {
		in := params.PutInput{Name: tc.name, Value: tc.value, Description: "karma: commit=abc"}
		if _, err := s.Put(t.Context(), in); err != nil {
			t.Fatalf("Put(%s): %v", tc.name, err)
		}
		out, err := client.DescribeParameters(t.Context(), &awsssm.DescribeParametersInput{
			ParameterFilters: []types.ParameterStringFilter{{Key: aws.String("Name"), Values: []string{tc.name}}},
		})
		if err != nil || len(out.Parameters) != 1 {
			t.Fatalf("DescribeParameters(%s): %+v, %v", tc.name, out, err)
		}
		got := out.Parameters[0]
		if aws.ToString(got.Description) != in.Description || string(got.Tier) != tc.tier {
			t.Errorf("%s: Description %q Tier %q; want %q %q",
				tc.name, aws.ToString(got.Description), got.Tier, in.Description, tc.tier)
		}
	}
}

// A value above Parameter Store's limit, or not UTF-8 (the SDK's JSON would store U+FFFD), is
// refused before any call, with the same permanent error as the embedded store: the pipeline
// fails the deployment instead of retrying.
func TestPutTooLargeIsPermanent(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	name := fmt.Sprintf("/karma-ssm-test/%d/huge/runtime", time.Now().UnixNano())
	for _, value := range []string{strings.Repeat("h", params.MaxValueBytes+1), "caf\xe9"} {
		_, err := s.Put(t.Context(), params.PutInput{Name: name, Value: value})
		var ie *params.InvalidError
		if !errors.As(err, &ie) || ie.Name != name || pipeline.Classify(err) != pipeline.DeadLetter {
			t.Fatalf("Put of %.20q (%d bytes): %v; want a permanent *params.InvalidError naming %s", value, len(value), err, name)
		}
	}
	if _, err := s.Get(t.Context(), name); !errors.Is(err, params.ErrNotFound) {
		t.Errorf("Get after the refused Put: %v, want not found", err)
	}
}
