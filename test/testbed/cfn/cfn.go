// Package cfn reads a CloudFormation template as CloudFormation does and
// evaluates its conditions and intrinsic functions for one stack: the
// stack test bed (stackbed) checks what moto made against it, and the
// deploy package's unit tests compare its values. It needs no AWS SDK.
package cfn

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Template is a CloudFormation template as plain data (maps, slices
// and strings; every scalar a string), short-form intrinsics (!Ref X) in
// their long form ({"Ref": "X"}), as CloudFormation reads it.
type Template struct {
	Parameters map[string]map[string]any
	Mappings   map[string]any
	Conditions map[string]any
	Resources  map[string]Resource
	Outputs    map[string]map[string]any
}

// Resource is one resource of a template.
type Resource struct {
	Type           string
	Condition      string // empty: always created
	DeletionPolicy string
	DependsOn      any
	Properties     map[string]any
}

// Parse reads a YAML (or JSON) template.
func Parse(src []byte) (*Template, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("empty template")
	}
	v, err := plain(doc.Content[0])
	if err != nil {
		return nil, err
	}
	raw, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("template: not a mapping")
	}
	tpl := &Template{Parameters: map[string]map[string]any{}, Resources: map[string]Resource{}, Outputs: map[string]map[string]any{}}
	tpl.Mappings, _ = raw["Mappings"].(map[string]any)
	tpl.Conditions, _ = raw["Conditions"].(map[string]any)
	params, _ := raw["Parameters"].(map[string]any)
	for name, p := range params {
		tpl.Parameters[name], _ = p.(map[string]any)
	}
	outputs, _ := raw["Outputs"].(map[string]any)
	for name, o := range outputs {
		tpl.Outputs[name], _ = o.(map[string]any)
	}
	resources, _ := raw["Resources"].(map[string]any)
	for name, r := range resources {
		m, _ := r.(map[string]any)
		var res Resource
		res.Type, _ = m["Type"].(string)
		res.Condition, _ = m["Condition"].(string)
		res.DeletionPolicy, _ = m["DeletionPolicy"].(string)
		res.DependsOn = m["DependsOn"]
		res.Properties, _ = m["Properties"].(map[string]any)
		if res.Properties == nil {
			res.Properties = map[string]any{}
		}
		tpl.Resources[name] = res
	}
	if len(tpl.Resources) == 0 {
		return nil, errors.New("template: no resources")
	}
	return tpl, nil
}

func plain(n *yaml.Node) (any, error) {
	var v any
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			c, err := plain(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = c
		}
		v = m
	case yaml.SequenceNode:
		s := []any{}
		for _, c := range n.Content {
			p, err := plain(c)
			if err != nil {
				return nil, err
			}
			s = append(s, p)
		}
		v = s
	case yaml.AliasNode:
		return nil, fmt.Errorf("line %d: YAML aliases are not CloudFormation", n.Line)
	default:
		v = n.Value
	}
	tag, ok := strings.CutPrefix(n.Tag, "!")
	if !ok || strings.HasPrefix(tag, "!") {
		return v, nil // no tag, or a YAML core tag (!!str)
	}
	if tag == "Ref" || tag == "Condition" {
		return map[string]any{tag: v}, nil
	}
	if s, ok := v.(string); ok && tag == "GetAtt" {
		res, attr, _ := strings.Cut(s, ".")
		v = []any{res, attr}
	}
	return map[string]any{"Fn::" + tag: v}, nil
}

// ParameterValues are the values a stack with these parameters has: the
// given ones and every other parameter's default. A parameter the
// template does not declare, or one with no value, is an error.
func (tpl *Template) ParameterValues(given map[string]string) (map[string]string, error) {
	out := map[string]string{}
	for name, v := range given {
		if _, ok := tpl.Parameters[name]; !ok {
			return nil, fmt.Errorf("parameter %s: the template declares no such parameter", name)
		}
		out[name] = v
	}
	for name, p := range tpl.Parameters {
		if _, ok := out[name]; ok {
			continue
		}
		d, ok := p["Default"]
		if !ok {
			return nil, fmt.Errorf("parameter %s has no default and no value", name)
		}
		out[name], _ = d.(string)
	}
	return out, nil
}

// noValue is what AWS::NoValue resolves to; Resolve drops it from maps
// and lists, as CloudFormation does.
type noValue struct{}

// NoValue stands for AWS::NoValue.
var NoValue any = noValue{}

// Resolver evaluates a template's conditions and intrinsic functions
// for one stack: its parameters, pseudo parameters, and what its resources
// are (Ref) and have (Fn::GetAtt).
type Resolver struct {
	Template *Template
	Params   map[string]string // every parameter's value (ParameterValues)
	Pseudo   map[string]string // AWS::Region, AWS::AccountId, AWS::StackName, ...
	// Ref is a resource's Ref value by logical id (its physical id).
	Ref map[string]string
	// Attr returns a resource's attribute (Fn::GetAtt); nil: none known.
	Attr  func(logical, attr string) (string, error)
	conds map[string]bool
}

// Condition evaluates a named condition (Fn::Equals, Fn::Not, Fn::And,
// Fn::Or, Condition, over parameters and pseudo parameters).
func (r *Resolver) Condition(name string) (bool, error) {
	if name == "" {
		return true, nil
	}
	if v, ok := r.conds[name]; ok {
		return v, nil
	}
	def, ok := r.Template.Conditions[name]
	if !ok {
		return false, fmt.Errorf("condition %s is not defined", name)
	}
	v, err := r.evalCondition(def)
	if err != nil {
		return false, fmt.Errorf("condition %s: %w", name, err)
	}
	if r.conds == nil {
		r.conds = map[string]bool{}
	}
	r.conds[name] = v
	return v, nil
}

func (r *Resolver) evalCondition(v any) (bool, error) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return false, fmt.Errorf("not a condition function: %v", v)
	}
	for fn, arg := range m {
		args, _ := arg.([]any)
		switch fn {
		case "Condition":
			name, _ := arg.(string)
			return r.Condition(name)
		case "Fn::Equals":
			if len(args) != 2 {
				return false, fmt.Errorf("Fn::Equals of %d values", len(args))
			}
			a, err := r.Resolve(args[0])
			if err != nil {
				return false, err
			}
			b, err := r.Resolve(args[1])
			if err != nil {
				return false, err
			}
			return String(a) == String(b), nil
		case "Fn::Not":
			if len(args) != 1 {
				return false, fmt.Errorf("Fn::Not of %d conditions", len(args))
			}
			c, err := r.evalCondition(args[0])
			return !c, err
		case "Fn::And", "Fn::Or":
			and := fn == "Fn::And"
			for _, a := range args {
				c, err := r.evalCondition(a)
				if err != nil {
					return false, err
				}
				if c != and {
					return c, nil
				}
			}
			return and, nil
		}
		return false, fmt.Errorf("condition function %s is not evaluated here", fn)
	}
	panic("unreachable")
}

// Resolve evaluates the intrinsic functions in v: Ref, Fn::GetAtt, Fn::Sub,
// Fn::Join, Fn::If, Fn::FindInMap, Fn::Select, Fn::Split and conditions.
// AWS::NoValue is dropped from maps and lists (and returned as NoValue
// on its own).
func (r *Resolver) Resolve(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 1 {
			for fn, arg := range x {
				if fn == "Ref" || fn == "Condition" || strings.HasPrefix(fn, "Fn::") {
					return r.intrinsic(fn, arg)
				}
			}
		}
		out := map[string]any{}
		for k, c := range x {
			rv, err := r.Resolve(c)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if rv != NoValue {
				out[k] = rv
			}
		}
		return out, nil
	case []any:
		out := []any{}
		for i, c := range x {
			rv, err := r.Resolve(c)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			if rv != NoValue {
				out = append(out, rv)
			}
		}
		return out, nil
	default:
		return v, nil
	}
}

func (r *Resolver) ref(name string) (any, error) {
	if name == "AWS::NoValue" {
		return NoValue, nil
	}
	if v, ok := r.Pseudo[name]; ok {
		return v, nil
	}
	if p, ok := r.Template.Parameters[name]; ok {
		v := r.Params[name]
		if typ, _ := p["Type"].(string); strings.HasPrefix(typ, "List<") || typ == "CommaDelimitedList" {
			out := []any{}
			for _, s := range strings.Split(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					out = append(out, s)
				}
			}
			return out, nil
		}
		return v, nil
	}
	if v, ok := r.Ref[name]; ok {
		return v, nil
	}
	if _, ok := r.Template.Resources[name]; ok {
		return nil, fmt.Errorf("a Ref of %s: the resource has no known physical id", name)
	}
	return nil, fmt.Errorf("a Ref of %s: no parameter, pseudo parameter or resource has that name", name)
}

func (r *Resolver) getAtt(res, attr string) (string, error) {
	if r.Attr == nil {
		return "", fmt.Errorf("Fn::GetAtt %s.%s: no attributes known", res, attr)
	}
	return r.Attr(res, attr)
}

var subVar = regexp.MustCompile(`\$\{([^}]*)\}`)

func (r *Resolver) intrinsic(fn string, arg any) (any, error) {
	args, _ := arg.([]any)
	switch fn {
	case "Ref":
		name, _ := arg.(string)
		return r.ref(name)
	case "Condition":
		name, _ := arg.(string)
		c, err := r.Condition(name)
		return fmt.Sprint(c), err
	case "Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or":
		c, err := r.evalCondition(map[string]any{fn: arg})
		return fmt.Sprint(c), err
	case "Fn::GetAtt":
		if s, ok := arg.(string); ok {
			res, attr, _ := strings.Cut(s, ".")
			args = []any{res, attr}
		}
		if len(args) != 2 {
			return nil, fmt.Errorf("Fn::GetAtt %v", arg)
		}
		res, _ := args[0].(string)
		attr, err := r.Resolve(args[1])
		if err != nil {
			return nil, err
		}
		return r.getAtt(res, String(attr))
	case "Fn::If":
		if len(args) != 3 {
			return nil, fmt.Errorf("Fn::If of %d values", len(args))
		}
		name, _ := args[0].(string)
		c, err := r.Condition(name)
		if err != nil {
			return nil, err
		}
		if c {
			return r.Resolve(args[1])
		}
		return r.Resolve(args[2])
	case "Fn::Join":
		if len(args) != 2 {
			return nil, fmt.Errorf("Fn::Join of %d values", len(args))
		}
		sep, _ := args[0].(string)
		items, err := r.Resolve(args[1])
		if err != nil {
			return nil, err
		}
		list, ok := items.([]any)
		if !ok {
			return nil, fmt.Errorf("Fn::Join of %v, not a list", items)
		}
		parts := make([]string, len(list))
		for i, p := range list {
			parts[i] = String(p)
		}
		return strings.Join(parts, sep), nil
	case "Fn::Select":
		if len(args) != 2 {
			return nil, fmt.Errorf("Fn::Select of %d values", len(args))
		}
		i, err := r.Resolve(args[0])
		if err != nil {
			return nil, err
		}
		items, err := r.Resolve(args[1])
		if err != nil {
			return nil, err
		}
		list, _ := items.([]any)
		var n int
		if _, err := fmt.Sscan(String(i), &n); err != nil || n < 0 || n >= len(list) {
			return nil, fmt.Errorf("Fn::Select %v of %d values", i, len(list))
		}
		return list[n], nil
	case "Fn::Split":
		if len(args) != 2 {
			return nil, fmt.Errorf("Fn::Split of %d values", len(args))
		}
		sep, _ := args[0].(string)
		s, err := r.Resolve(args[1])
		if err != nil {
			return nil, err
		}
		out := []any{}
		for _, p := range strings.Split(String(s), sep) {
			out = append(out, p)
		}
		return out, nil
	case "Fn::FindInMap":
		if len(args) != 3 {
			return nil, fmt.Errorf("Fn::FindInMap of %d values", len(args))
		}
		var keys [3]string
		for i, a := range args {
			v, err := r.Resolve(a)
			if err != nil {
				return nil, err
			}
			keys[i] = String(v)
		}
		m, _ := r.Template.Mappings[keys[0]].(map[string]any)
		top, _ := m[keys[1]].(map[string]any)
		v, ok := top[keys[2]]
		if !ok {
			return nil, fmt.Errorf("Fn::FindInMap %v: not in the mappings", keys)
		}
		return v, nil
	case "Fn::Sub":
		s, _ := arg.(string)
		vars := map[string]any{}
		if len(args) > 0 {
			s, _ = args[0].(string)
			if len(args) > 1 {
				m, _ := args[1].(map[string]any)
				for k, v := range m {
					rv, err := r.Resolve(v)
					if err != nil {
						return nil, fmt.Errorf("Fn::Sub variable %s: %w", k, err)
					}
					vars[k] = rv
				}
			}
		}
		var firstErr error
		out := subVar.ReplaceAllStringFunc(s, func(m string) string {
			name := m[2 : len(m)-1]
			if strings.HasPrefix(name, "!") {
				return "${" + name[1:] + "}" // ${!Literal}
			}
			var v any
			var err error
			if x, ok := vars[name]; ok {
				v = x
			} else if res, attr, ok := strings.Cut(name, "."); ok && r.Pseudo[name] == "" {
				v, err = r.getAtt(res, attr)
			} else {
				v, err = r.ref(name)
			}
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("Fn::Sub %s: %w", m, err)
			}
			return String(v)
		})
		return out, firstErr
	}
	return nil, fmt.Errorf("%s is not resolved here", fn)
}

// String is a resolved scalar as a string ("" for AWS::NoValue); lists
// are joined with commas.
func String(v any) string {
	switch x := v.(type) {
	case nil, noValue:
		return ""
	case string:
		return x
	case []any:
		parts := make([]string, len(x))
		for i, p := range x {
			parts[i] = String(p)
		}
		return strings.Join(parts, ",")
	default:
		return fmt.Sprint(x)
	}
}

// Canonical writes a value with sorted keys and every scalar a string,
// so that a template's resolved properties and what a service reports
// back (numbers, booleans) compare equal when they say the same.
func Canonical(v any) string {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%q:%s", k, Canonical(x[k]))
		}
		return "{" + strings.Join(parts, ",") + "}"
	case []any:
		parts := make([]string, len(x))
		for i, c := range x {
			parts[i] = Canonical(c)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case float64:
		return fmt.Sprintf("%q", fmt.Sprint(x))
	default:
		return fmt.Sprintf("%q", String(x))
	}
}
