from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BinaryOp(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BINARY_OP_UNSPECIFIED: _ClassVar[BinaryOp]
    BINARY_OP_EQ: _ClassVar[BinaryOp]
    BINARY_OP_NE: _ClassVar[BinaryOp]
    BINARY_OP_LT: _ClassVar[BinaryOp]
    BINARY_OP_LE: _ClassVar[BinaryOp]
    BINARY_OP_GT: _ClassVar[BinaryOp]
    BINARY_OP_GE: _ClassVar[BinaryOp]
    BINARY_OP_AND: _ClassVar[BinaryOp]
    BINARY_OP_OR: _ClassVar[BinaryOp]
    BINARY_OP_ADD: _ClassVar[BinaryOp]
    BINARY_OP_SUB: _ClassVar[BinaryOp]
    BINARY_OP_MUL: _ClassVar[BinaryOp]
    BINARY_OP_DIV: _ClassVar[BinaryOp]

class UnaryOp(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNARY_OP_UNSPECIFIED: _ClassVar[UnaryOp]
    UNARY_OP_NOT: _ClassVar[UnaryOp]
    UNARY_OP_NEG: _ClassVar[UnaryOp]

class NumericEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NUMERIC_ENCODING_UNSPECIFIED: _ClassVar[NumericEncoding]
    NUMERIC_ENCODING_INTEGER: _ClassVar[NumericEncoding]
    NUMERIC_ENCODING_DECIMAL: _ClassVar[NumericEncoding]
    NUMERIC_ENCODING_FLOAT: _ClassVar[NumericEncoding]
BINARY_OP_UNSPECIFIED: BinaryOp
BINARY_OP_EQ: BinaryOp
BINARY_OP_NE: BinaryOp
BINARY_OP_LT: BinaryOp
BINARY_OP_LE: BinaryOp
BINARY_OP_GT: BinaryOp
BINARY_OP_GE: BinaryOp
BINARY_OP_AND: BinaryOp
BINARY_OP_OR: BinaryOp
BINARY_OP_ADD: BinaryOp
BINARY_OP_SUB: BinaryOp
BINARY_OP_MUL: BinaryOp
BINARY_OP_DIV: BinaryOp
UNARY_OP_UNSPECIFIED: UnaryOp
UNARY_OP_NOT: UnaryOp
UNARY_OP_NEG: UnaryOp
NUMERIC_ENCODING_UNSPECIFIED: NumericEncoding
NUMERIC_ENCODING_INTEGER: NumericEncoding
NUMERIC_ENCODING_DECIMAL: NumericEncoding
NUMERIC_ENCODING_FLOAT: NumericEncoding

class Value(_message.Message):
    __slots__ = ("null_value", "int_value", "float_value", "decimal_value", "text_value", "bool_value", "date_value", "timestamp_value")
    NULL_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    DECIMAL_VALUE_FIELD_NUMBER: _ClassVar[int]
    TEXT_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    DATE_VALUE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_VALUE_FIELD_NUMBER: _ClassVar[int]
    null_value: bool
    int_value: int
    float_value: float
    decimal_value: str
    text_value: str
    bool_value: bool
    date_value: str
    timestamp_value: str
    def __init__(self, null_value: _Optional[bool] = ..., int_value: _Optional[int] = ..., float_value: _Optional[float] = ..., decimal_value: _Optional[str] = ..., text_value: _Optional[str] = ..., bool_value: _Optional[bool] = ..., date_value: _Optional[str] = ..., timestamp_value: _Optional[str] = ...) -> None: ...

class Expr(_message.Message):
    __slots__ = ("column", "literal", "binary", "unary", "between", "in_list", "like", "is_null", "case_expr", "func", "extract", "date_trunc", "cast")
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    LITERAL_FIELD_NUMBER: _ClassVar[int]
    BINARY_FIELD_NUMBER: _ClassVar[int]
    UNARY_FIELD_NUMBER: _ClassVar[int]
    BETWEEN_FIELD_NUMBER: _ClassVar[int]
    IN_LIST_FIELD_NUMBER: _ClassVar[int]
    LIKE_FIELD_NUMBER: _ClassVar[int]
    IS_NULL_FIELD_NUMBER: _ClassVar[int]
    CASE_EXPR_FIELD_NUMBER: _ClassVar[int]
    FUNC_FIELD_NUMBER: _ClassVar[int]
    EXTRACT_FIELD_NUMBER: _ClassVar[int]
    DATE_TRUNC_FIELD_NUMBER: _ClassVar[int]
    CAST_FIELD_NUMBER: _ClassVar[int]
    column: str
    literal: Value
    binary: BinaryExpr
    unary: UnaryExpr
    between: BetweenExpr
    in_list: InExpr
    like: LikeExpr
    is_null: IsNullExpr
    case_expr: CaseExpr
    func: FuncExpr
    extract: ExtractExpr
    date_trunc: DateTruncExpr
    cast: CastExpr
    def __init__(self, column: _Optional[str] = ..., literal: _Optional[_Union[Value, _Mapping]] = ..., binary: _Optional[_Union[BinaryExpr, _Mapping]] = ..., unary: _Optional[_Union[UnaryExpr, _Mapping]] = ..., between: _Optional[_Union[BetweenExpr, _Mapping]] = ..., in_list: _Optional[_Union[InExpr, _Mapping]] = ..., like: _Optional[_Union[LikeExpr, _Mapping]] = ..., is_null: _Optional[_Union[IsNullExpr, _Mapping]] = ..., case_expr: _Optional[_Union[CaseExpr, _Mapping]] = ..., func: _Optional[_Union[FuncExpr, _Mapping]] = ..., extract: _Optional[_Union[ExtractExpr, _Mapping]] = ..., date_trunc: _Optional[_Union[DateTruncExpr, _Mapping]] = ..., cast: _Optional[_Union[CastExpr, _Mapping]] = ...) -> None: ...

class BinaryExpr(_message.Message):
    __slots__ = ("op", "left", "right")
    OP_FIELD_NUMBER: _ClassVar[int]
    LEFT_FIELD_NUMBER: _ClassVar[int]
    RIGHT_FIELD_NUMBER: _ClassVar[int]
    op: BinaryOp
    left: Expr
    right: Expr
    def __init__(self, op: _Optional[_Union[BinaryOp, str]] = ..., left: _Optional[_Union[Expr, _Mapping]] = ..., right: _Optional[_Union[Expr, _Mapping]] = ...) -> None: ...

class UnaryExpr(_message.Message):
    __slots__ = ("op", "operand")
    OP_FIELD_NUMBER: _ClassVar[int]
    OPERAND_FIELD_NUMBER: _ClassVar[int]
    op: UnaryOp
    operand: Expr
    def __init__(self, op: _Optional[_Union[UnaryOp, str]] = ..., operand: _Optional[_Union[Expr, _Mapping]] = ...) -> None: ...

class BetweenExpr(_message.Message):
    __slots__ = ("operand", "low", "high", "negated")
    OPERAND_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    NEGATED_FIELD_NUMBER: _ClassVar[int]
    operand: Expr
    low: Expr
    high: Expr
    negated: bool
    def __init__(self, operand: _Optional[_Union[Expr, _Mapping]] = ..., low: _Optional[_Union[Expr, _Mapping]] = ..., high: _Optional[_Union[Expr, _Mapping]] = ..., negated: _Optional[bool] = ...) -> None: ...

class InExpr(_message.Message):
    __slots__ = ("operand", "values", "negated")
    OPERAND_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    NEGATED_FIELD_NUMBER: _ClassVar[int]
    operand: Expr
    values: _containers.RepeatedCompositeFieldContainer[Value]
    negated: bool
    def __init__(self, operand: _Optional[_Union[Expr, _Mapping]] = ..., values: _Optional[_Iterable[_Union[Value, _Mapping]]] = ..., negated: _Optional[bool] = ...) -> None: ...

class LikeExpr(_message.Message):
    __slots__ = ("operand", "pattern", "negated", "case_insensitive")
    OPERAND_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    NEGATED_FIELD_NUMBER: _ClassVar[int]
    CASE_INSENSITIVE_FIELD_NUMBER: _ClassVar[int]
    operand: Expr
    pattern: str
    negated: bool
    case_insensitive: bool
    def __init__(self, operand: _Optional[_Union[Expr, _Mapping]] = ..., pattern: _Optional[str] = ..., negated: _Optional[bool] = ..., case_insensitive: _Optional[bool] = ...) -> None: ...

class IsNullExpr(_message.Message):
    __slots__ = ("operand", "negated")
    OPERAND_FIELD_NUMBER: _ClassVar[int]
    NEGATED_FIELD_NUMBER: _ClassVar[int]
    operand: Expr
    negated: bool
    def __init__(self, operand: _Optional[_Union[Expr, _Mapping]] = ..., negated: _Optional[bool] = ...) -> None: ...

class WhenClause(_message.Message):
    __slots__ = ("condition", "result")
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    condition: Expr
    result: Expr
    def __init__(self, condition: _Optional[_Union[Expr, _Mapping]] = ..., result: _Optional[_Union[Expr, _Mapping]] = ...) -> None: ...

class CaseExpr(_message.Message):
    __slots__ = ("whens", "default")
    WHENS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FIELD_NUMBER: _ClassVar[int]
    whens: _containers.RepeatedCompositeFieldContainer[WhenClause]
    default: Expr
    def __init__(self, whens: _Optional[_Iterable[_Union[WhenClause, _Mapping]]] = ..., default: _Optional[_Union[Expr, _Mapping]] = ...) -> None: ...

class FuncExpr(_message.Message):
    __slots__ = ("name", "args")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    args: _containers.RepeatedCompositeFieldContainer[Expr]
    def __init__(self, name: _Optional[str] = ..., args: _Optional[_Iterable[_Union[Expr, _Mapping]]] = ...) -> None: ...

class ExtractExpr(_message.Message):
    __slots__ = ("part", "operand")
    PART_FIELD_NUMBER: _ClassVar[int]
    OPERAND_FIELD_NUMBER: _ClassVar[int]
    part: str
    operand: Expr
    def __init__(self, part: _Optional[str] = ..., operand: _Optional[_Union[Expr, _Mapping]] = ...) -> None: ...

class DateTruncExpr(_message.Message):
    __slots__ = ("unit", "operand")
    UNIT_FIELD_NUMBER: _ClassVar[int]
    OPERAND_FIELD_NUMBER: _ClassVar[int]
    unit: str
    operand: Expr
    def __init__(self, unit: _Optional[str] = ..., operand: _Optional[_Union[Expr, _Mapping]] = ...) -> None: ...

class CastExpr(_message.Message):
    __slots__ = ("operand", "type")
    OPERAND_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    operand: Expr
    type: str
    def __init__(self, operand: _Optional[_Union[Expr, _Mapping]] = ..., type: _Optional[str] = ...) -> None: ...

class Measure(_message.Message):
    __slots__ = ("expr", "encoding", "decimal_scale", "want_sum", "want_square")
    EXPR_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    DECIMAL_SCALE_FIELD_NUMBER: _ClassVar[int]
    WANT_SUM_FIELD_NUMBER: _ClassVar[int]
    WANT_SQUARE_FIELD_NUMBER: _ClassVar[int]
    expr: Expr
    encoding: NumericEncoding
    decimal_scale: int
    want_sum: bool
    want_square: bool
    def __init__(self, expr: _Optional[_Union[Expr, _Mapping]] = ..., encoding: _Optional[_Union[NumericEncoding, str]] = ..., decimal_scale: _Optional[int] = ..., want_sum: _Optional[bool] = ..., want_square: _Optional[bool] = ...) -> None: ...

class GroupColumn(_message.Message):
    __slots__ = ("column", "domain", "expr")
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    EXPR_FIELD_NUMBER: _ClassVar[int]
    column: str
    domain: _containers.RepeatedCompositeFieldContainer[Value]
    expr: Expr
    def __init__(self, column: _Optional[str] = ..., domain: _Optional[_Iterable[_Union[Value, _Mapping]]] = ..., expr: _Optional[_Union[Expr, _Mapping]] = ...) -> None: ...

class SlotCodec(_message.Message):
    __slots__ = ("limb_bits", "count_limbs", "sum_limbs", "square_limbs", "fraction_bits", "slots")
    LIMB_BITS_FIELD_NUMBER: _ClassVar[int]
    COUNT_LIMBS_FIELD_NUMBER: _ClassVar[int]
    SUM_LIMBS_FIELD_NUMBER: _ClassVar[int]
    SQUARE_LIMBS_FIELD_NUMBER: _ClassVar[int]
    FRACTION_BITS_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    limb_bits: int
    count_limbs: int
    sum_limbs: int
    square_limbs: int
    fraction_bits: int
    slots: int
    def __init__(self, limb_bits: _Optional[int] = ..., count_limbs: _Optional[int] = ..., sum_limbs: _Optional[int] = ..., square_limbs: _Optional[int] = ..., fraction_bits: _Optional[int] = ..., slots: _Optional[int] = ...) -> None: ...

class AggregatePlan(_message.Message):
    __slots__ = ("table", "filter", "groups", "measures", "codec")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    MEASURES_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    table: str
    filter: Expr
    groups: _containers.RepeatedCompositeFieldContainer[GroupColumn]
    measures: _containers.RepeatedCompositeFieldContainer[Measure]
    codec: SlotCodec
    def __init__(self, table: _Optional[str] = ..., filter: _Optional[_Union[Expr, _Mapping]] = ..., groups: _Optional[_Iterable[_Union[GroupColumn, _Mapping]]] = ..., measures: _Optional[_Iterable[_Union[Measure, _Mapping]]] = ..., codec: _Optional[_Union[SlotCodec, _Mapping]] = ...) -> None: ...
