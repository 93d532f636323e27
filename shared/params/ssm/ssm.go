// Package ssm is params.Store on AWS Systems Manager Parameter Store (aws-sdk-go-v2), the
// production backend; it passes the same paramstest conformance suite as the embedded store.
//
// Contract, beyond params.Store:
//   - Get and GetByPath decrypt SecureStrings (WithDecryption) and leave Description and
//     LastModifiedUser empty: GetParameter(s) do not return them and DescribeParameters costs a
//     second, paginated, more throttled call per read. Put records Description; SSM records the
//     caller's ARN as LastModifiedUser (PutInput.User is not sent).
//   - GetByPath pages through GetParametersByPath (Recursive, 10 per page, SSM's maximum) and
//     sorts by name.
//   - DescribeByPath pages through DescribeParameters (a recursive Path filter, 50 per page):
//     the descriptions and modifiers GetByPath leaves out, without values (params.Describer;
//     params.GetByPathDescribed joins the two, for the drift check's provenance).
//   - Put reads the current value first and returns Changed=false without writing when value
//     and type are equal (SSM itself would create a new version). Read and write are two calls:
//     two concurrent Puts of the same new value may both write; the versions stay consistent.
//   - A value that is not UTF-8, or above params.MaxValueBytes (StandardTierLimit with Tier
//     Standard), is refused before any call with a *params.InvalidError (params.CheckValue),
//     permanent for the pipeline, as the embedded store refuses it.
//   - Put's Tier defaults to params.TierFor(value). SSM refuses to downgrade an Advanced
//     parameter, so when a defaulted Standard write is refused as a client error, Put retries
//     once as Advanced (an explicit Tier is never changed).
//   - SSM refuses to change a parameter's type (HierarchyTypeMismatchException); the error is
//     returned as is. moto does not enforce this.
//   - Unknown names give a *NotFoundError matching both params.ErrNotFound and
//     *types.ParameterNotFound. Other AWS errors are wrapped with the operation and the name.
//   - Throttling is retried by the SDK's standard retryer; raise its attempts with
//     config.WithRetryMaxAttempts through NewFromConfig's options if publishing many parameters.
package ssm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/usekarma/karma/shared/params"
)

var _ params.Store = (*Store)(nil)

// pageSize is GetParametersByPath's maximum MaxResults.
const pageSize = 10

// Store is params.Store on one SSM client (one account and region).
type Store struct {
	client *ssm.Client
}

// New returns a Store using client.
func New(client *ssm.Client) *Store { return &Store{client: client} }

// NewFromConfig loads the default AWS configuration (environment, shared config files, SSO,
// instance roles; optFns adjust it, e.g. config.WithRegion) and returns a Store. A non-empty
// endpoint overrides the SSM endpoint; when it is empty the SDK applies AWS_ENDPOINT_URL_SSM,
// AWS_ENDPOINT_URL and the shared config's endpoint_url itself.
func NewFromConfig(ctx context.Context, endpoint string, optFns ...func(*config.LoadOptions) error) (*Store, error) {
	cfg, err := config.LoadDefaultConfig(ctx, optFns...)
	if err != nil {
		return nil, fmt.Errorf("ssm: load AWS config: %w", err)
	}
	return New(ssm.NewFromConfig(cfg, func(o *ssm.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})), nil
}

// NotFoundError says a parameter does not exist. It matches params.ErrNotFound and unwraps to
// the SDK's *types.ParameterNotFound.
type NotFoundError struct {
	Name string
	Err  error
}

func (e *NotFoundError) Error() string { return fmt.Sprintf("ssm: parameter %q not found", e.Name) }

// Unwrap makes errors.Is(err, params.ErrNotFound) and errors.As(err, **types.ParameterNotFound) work.
func (e *NotFoundError) Unwrap() []error { return []error{params.ErrNotFound, e.Err} }

// Get returns the current, decrypted version of name.
func (s *Store) Get(ctx context.Context, name string) (params.Parameter, error) {
	out, err := s.client.GetParameter(ctx, &ssm.GetParameterInput{
		Name:           aws.String(name),
		WithDecryption: aws.Bool(true),
	})
	if err != nil {
		return params.Parameter{}, wrap("get", name, err)
	}
	if out.Parameter == nil {
		return params.Parameter{}, fmt.Errorf("ssm: get %q: empty response", name)
	}
	return fromSSM(*out.Parameter), nil
}

// GetByPath returns every parameter below path, recursively, decrypted and sorted by name.
func (s *Store) GetByPath(ctx context.Context, path string) ([]params.Parameter, error) {
	pages := ssm.NewGetParametersByPathPaginator(s.client, &ssm.GetParametersByPathInput{
		Path:           aws.String(path),
		Recursive:      aws.Bool(true),
		WithDecryption: aws.Bool(true),
		MaxResults:     aws.Int32(pageSize),
	})
	out := []params.Parameter{}
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, wrap("get by path", path, err)
		}
		for _, p := range page.Parameters {
			out = append(out, fromSSM(p))
		}
	}
	slices.SortFunc(out, func(a, b params.Parameter) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Put writes in as a new version unless value and type equal the current ones.
func (s *Store) Put(ctx context.Context, in params.PutInput) (params.PutResult, error) {
	// Checked here, not left to SSM: its refusal of a large value would be a client error like
	// any other (moto does not enforce the limit at all), and invalid UTF-8 would reach it as
	// U+FFFD through the SDK's JSON.
	if err := params.CheckValue(in.Name, in.Value, in.Tier); err != nil {
		return params.PutResult{}, err
	}
	typ := in.Type
	if typ == "" {
		typ = params.TypeString
	}
	cur, err := s.Get(ctx, in.Name)
	exists := err == nil
	switch {
	case exists && cur.Value == in.Value && cur.Type == typ:
		return params.PutResult{Version: cur.Version, Changed: false}, nil
	case err != nil && !errors.Is(err, params.ErrNotFound):
		return params.PutResult{}, fmt.Errorf("ssm: put %q: read current value: %w", in.Name, err)
	}

	tier := in.Tier
	if tier == "" {
		tier = params.TierFor(in.Value)
	}
	version, err := s.put(ctx, in, typ, tier)
	var apiErr smithy.APIError
	if err != nil && exists && in.Tier == "" && tier == params.TierStandard &&
		errors.As(err, &apiErr) && apiErr.ErrorFault() == smithy.FaultClient {
		// Most likely "can't downgrade a parameter from the advanced-parameter tier".
		if v, retryErr := s.put(ctx, in, typ, params.TierAdvanced); retryErr == nil {
			version, err = v, nil
		}
	}
	if err != nil {
		return params.PutResult{}, wrap("put", in.Name, err)
	}
	return params.PutResult{Version: version, Changed: true}, nil
}

func (s *Store) put(ctx context.Context, in params.PutInput, typ, tier string) (int64, error) {
	req := &ssm.PutParameterInput{
		Name:      aws.String(in.Name),
		Value:     aws.String(in.Value),
		Type:      types.ParameterType(typ),
		Tier:      types.ParameterTier(tier),
		Overwrite: aws.Bool(true),
	}
	if in.Description != "" {
		req.Description = aws.String(in.Description)
	}
	out, err := s.client.PutParameter(ctx, req)
	if err != nil {
		return 0, err
	}
	return out.Version, nil
}

// Delete removes name and, as SSM does, its history.
func (s *Store) Delete(ctx context.Context, name string) error {
	_, err := s.client.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String(name)})
	if err != nil {
		return wrap("delete", name, err)
	}
	return nil
}

func wrap(op, name string, err error) error {
	var nf *types.ParameterNotFound
	if errors.As(err, &nf) {
		return &NotFoundError{Name: name, Err: err}
	}
	return fmt.Errorf("ssm: %s %q: %w", op, name, err)
}

func fromSSM(p types.Parameter) params.Parameter {
	var modified time.Time
	if p.LastModifiedDate != nil {
		modified = p.LastModifiedDate.UTC()
	}
	return params.Parameter{
		Name:         aws.ToString(p.Name),
		Value:        aws.ToString(p.Value),
		Type:         string(p.Type),
		Version:      p.Version,
		LastModified: modified,
	}
}
