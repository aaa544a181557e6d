package cfn

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// Decode fills an SDK input (a pointer to its struct) from a resource's
// resolved properties, whose names are the SDK's field names (as they are
// for Application Auto Scaling and CloudWatch): scalars from their
// template strings, a list of {Key, Value} into a map. A property the
// struct has no field for is an error, so that nothing the template says
// is silently dropped.
func Decode(props map[string]any, into any) error {
	v := reflect.ValueOf(into)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("cfn.Decode into %T: want a pointer to a struct", into)
	}
	return decode(props, v.Elem(), "")
}

func decode(src any, dst reflect.Value, path string) error {
	if src == nil || src == NoValue {
		return nil
	}
	switch dst.Kind() {
	case reflect.Pointer:
		elem := reflect.New(dst.Type().Elem())
		if err := decode(src, elem.Elem(), path); err != nil {
			return err
		}
		dst.Set(elem)
		return nil
	case reflect.Struct:
		m, ok := src.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want a map for %s, have %T", path, dst.Type(), src)
		}
		for k, v := range m {
			f := dst.FieldByNameFunc(func(name string) bool { return strings.EqualFold(name, k) })
			if !f.IsValid() || !f.CanSet() {
				return fmt.Errorf("%s.%s: %s has no such field", path, k, dst.Type())
			}
			if err := decode(v, f, path+"."+k); err != nil {
				return err
			}
		}
		return nil
	case reflect.Slice:
		list, ok := src.([]any)
		if !ok {
			list = []any{src}
		}
		out := reflect.MakeSlice(dst.Type(), len(list), len(list))
		for i, item := range list {
			if err := decode(item, out.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		dst.Set(out)
		return nil
	case reflect.Map:
		out := reflect.MakeMap(dst.Type())
		put := func(k string, v any) error {
			val := reflect.New(dst.Type().Elem()).Elem()
			if err := decode(v, val, path+"."+k); err != nil {
				return err
			}
			out.SetMapIndex(reflect.ValueOf(k).Convert(dst.Type().Key()), val)
			return nil
		}
		switch x := src.(type) {
		case map[string]any:
			for k, v := range x {
				if err := put(k, v); err != nil {
					return err
				}
			}
		case []any: // tags: [{Key: k, Value: v}]
			for _, item := range x {
				kv, _ := item.(map[string]any)
				if err := put(String(kv["Key"]), kv["Value"]); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("%s: want a map, have %T", path, src)
		}
		dst.Set(out)
		return nil
	}
	s, ok := src.(string)
	if !ok {
		return fmt.Errorf("%s: want a scalar for %s, have %T", path, dst.Type(), src)
	}
	switch dst.Kind() {
	case reflect.String:
		dst.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		dst.SetBool(b)
	case reflect.Int, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		dst.SetInt(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		dst.SetFloat(f)
	default:
		return fmt.Errorf("%s: cannot set a %s", path, dst.Type())
	}
	return nil
}
