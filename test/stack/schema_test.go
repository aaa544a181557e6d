package stack

import (
	"slices"
	"testing"

	"github.com/awslabs/goformation/v7"
	"go.yaml.in/yaml/v3"

	"github.com/s3clone/s3clone/deploy"
	"github.com/s3clone/s3clone/test/testbed/cfn"
)

// newerThanGoformation are properties AWS added to a resource type after
// goformation v7.14.9's resource specification (it refuses them as unknown):
// the schema test reads the template without them. cfn-lint 1.51's schemas
// have them (TestCfnLint checks them there); each must still be in the
// template, or it comes off this list.
var newerThanGoformation = map[string][]string{
	"AWS::EC2::VPCEndpoint": {"Tags"},
	"AWS::Events::Rule":     {"Tags"},
}

// mapping returns the value of key in the YAML mapping n (n itself for ""),
// or nil when n has no such key.
func mapping(t *testing.T, n *yaml.Node, key string) *yaml.Node {
	t.Helper()
	if n == nil || n.Kind != yaml.MappingNode {
		t.Fatalf("line %d: not a mapping", n.Line)
	}
	if key == "" {
		return n
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// TestTemplateMatchesTheResourceSchemas parses the template with goformation,
// whose resource types are generated from AWS's CloudFormation resource
// specification and refuse unknown properties and wrongly typed values.
// It is here, not with deploy's unit tests, because goformation's resource
// types are a large share of a cold build of those; cfn-lint, which
// deploy's TestCfnLint runs, checks the template against the same schemas.
func TestTemplateMatchesTheResourceSchemas(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal(deploy.Template, &doc); err != nil {
		t.Fatal(err)
	}
	stripped := map[string]bool{}
	resources := mapping(t, mapping(t, doc.Content[0], "Resources"), "")
	for i := 0; i+1 < len(resources.Content); i += 2 {
		r := resources.Content[i+1]
		typ := mapping(t, r, "Type").Value
		props := mapping(t, r, "Properties")
		for _, name := range newerThanGoformation[typ] {
			for j := 0; props != nil && j+1 < len(props.Content); j += 2 {
				if props.Content[j].Value == name {
					props.Content = slices.Delete(props.Content, j, j+2)
					stripped[typ+"."+name] = true
					break
				}
			}
		}
	}
	for typ, names := range newerThanGoformation {
		for _, name := range names {
			if !stripped[typ+"."+name] {
				t.Errorf("no %s in the template has %s: take it off newerThanGoformation", typ, name)
			}
		}
	}
	// goformation resolves a Ref to a parameter as its Default, unsplit: a
	// CommaDelimitedList's "" would reach a list property as a string.
	params := mapping(t, doc.Content[0], "Parameters")
	for i := 0; i+1 < len(params.Content); i += 2 {
		p := params.Content[i+1]
		if mapping(t, p, "Type").Value != "CommaDelimitedList" {
			continue
		}
		for j := 0; j+1 < len(p.Content); j += 2 {
			if p.Content[j].Value == "Default" {
				p.Content = slices.Delete(p.Content, j, j+2)
				break
			}
		}
	}
	body, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := goformation.ParseYAML(body)
	if err != nil {
		t.Fatalf("s3clone.yaml does not match the CloudFormation resource specification: %v", err)
	}
	tpl, err := cfn.Parse(deploy.Template)
	if err != nil {
		t.Fatal(err)
	}
	if len(parsed.Resources) != len(tpl.Resources) {
		t.Errorf("goformation read %d resources, the template has %d", len(parsed.Resources), len(tpl.Resources))
	}
	for name, r := range parsed.Resources {
		if got, want := r.AWSCloudFormationType(), tpl.Resources[name].Type; got != want {
			t.Errorf("%s: read as %s, declared %s", name, got, want)
		}
	}
}
