package params

import (
	"context"
	"errors"
	"fmt"
)

// Describer is implemented by stores whose GetByPath leaves Description and LastModifiedUser
// empty (SSM: GetParametersByPath does not return them). DescribeByPath lists the metadata of
// every parameter below path — name, type, version, last modification, description — without
// values, recursively and paged as the store pages it.
type Describer interface {
	DescribeByPath(ctx context.Context, path string) ([]Parameter, error)
}

// GetByPathDescribed returns every parameter below path with its value and, whatever the store,
// its Description and LastModifiedUser (which carry Karma's provenance: IsKarmaWrite). The
// embedded store's GetByPath has them already: one read. For a Describer (SSM) it is two paged
// reads — GetByPath for the values, DescribeByPath for the metadata — joined by name and
// version; a parameter written between the two reads (its versions differ) is completed from
// its History, one call for each such parameter and none in the usual case. A parameter the
// metadata does not list (created between the reads) is completed the same way.
func GetByPathDescribed(ctx context.Context, s Store, path string) ([]Parameter, error) {
	ps, err := s.GetByPath(ctx, path)
	if err != nil {
		return nil, err
	}
	d, ok := s.(Describer)
	if !ok {
		return ps, nil
	}
	metas, err := d.DescribeByPath(ctx, path)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]Parameter, len(metas))
	for _, m := range metas {
		byName[m.Name] = m
	}
	for i := range ps {
		m, ok := byName[ps[i].Name]
		if ok && m.Version == ps[i].Version {
			ps[i].Description, ps[i].LastModifiedUser = m.Description, m.LastModifiedUser
			continue
		}
		if err := fromHistory(ctx, s, &ps[i]); err != nil {
			return nil, err
		}
	}
	return ps, nil
}

// fromHistory completes p's description and modifier from the version of its history that has
// p's version.
func fromHistory(ctx context.Context, s Store, p *Parameter) error {
	h, ok := s.(Historian)
	if !ok {
		return fmt.Errorf("params: %s changed while it was read, and the store (%T) keeps no history to describe it", p.Name, s)
	}
	versions, err := h.History(ctx, p.Name)
	if errors.Is(err, ErrNotFound) {
		return nil // deleted since: its description no longer matters
	}
	if err != nil {
		return fmt.Errorf("params: describing %s: %w", p.Name, err)
	}
	for _, v := range versions {
		if v.Version == p.Version {
			p.Description, p.LastModifiedUser = v.Description, v.LastModifiedUser
			return nil
		}
	}
	return nil
}
