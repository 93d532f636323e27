package ssm

import (
	"context"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/usekarma/karma/shared/params"
)

var _ params.Describer = (*Store)(nil)

// describePageSize is DescribeParameters' maximum MaxResults.
const describePageSize = 50

// DescribeByPath lists the metadata of every parameter below path, recursively — name, type,
// version, last modification, last modifier and description, no values — with
// DescribeParameters (a Path filter, Recursive, 50 per page, SSM's maximum), sorted by name.
// It is what params.GetByPathDescribed joins with GetByPath: Karma's provenance is in the
// description, which GetParametersByPath does not return. IAM: ssm:DescribeParameters, which
// takes no resource-level restriction (resource "*").
func (s *Store) DescribeByPath(ctx context.Context, path string) ([]params.Parameter, error) {
	filter := types.ParameterStringFilter{Key: aws.String("Path"), Option: aws.String("Recursive"),
		Values: []string{strings.TrimSuffix(path, "/")}}
	if path == "/" {
		filter.Values = []string{"/"}
	}
	pages := ssm.NewDescribeParametersPaginator(s.client, &ssm.DescribeParametersInput{
		ParameterFilters: []types.ParameterStringFilter{filter},
		MaxResults:       aws.Int32(describePageSize),
	})
	out := []params.Parameter{}
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, wrap("describe by path", path, err)
		}
		for _, m := range page.Parameters {
			p := params.Parameter{Name: aws.ToString(m.Name), Type: string(m.Type), Version: m.Version,
				LastModifiedUser: aws.ToString(m.LastModifiedUser), Description: aws.ToString(m.Description)}
			if m.LastModifiedDate != nil {
				p.LastModified = m.LastModifiedDate.UTC()
			}
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b params.Parameter) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
