from unseen.v1 import mask_pb2 as _mask_pb2
from unseen.v1 import plan_pb2 as _plan_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ColumnInfo(_message.Message):
    __slots__ = ("name", "type", "uses", "domain_published", "domain", "bound_low", "bound_high", "grade")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    USES_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    BOUND_LOW_FIELD_NUMBER: _ClassVar[int]
    BOUND_HIGH_FIELD_NUMBER: _ClassVar[int]
    GRADE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    uses: _containers.RepeatedScalarFieldContainer[str]
    domain_published: bool
    domain: _containers.RepeatedCompositeFieldContainer[_plan_pb2.Value]
    bound_low: _plan_pb2.Value
    bound_high: _plan_pb2.Value
    grade: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., uses: _Optional[_Iterable[str]] = ..., domain_published: _Optional[bool] = ..., domain: _Optional[_Iterable[_Union[_plan_pb2.Value, _Mapping]]] = ..., bound_low: _Optional[_Union[_plan_pb2.Value, _Mapping]] = ..., bound_high: _Optional[_Union[_plan_pb2.Value, _Mapping]] = ..., grade: _Optional[str] = ...) -> None: ...

class TableInfo(_message.Message):
    __slots__ = ("name", "columns", "min_group_size", "holders", "assets", "dp")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    MIN_GROUP_SIZE_FIELD_NUMBER: _ClassVar[int]
    HOLDERS_FIELD_NUMBER: _ClassVar[int]
    ASSETS_FIELD_NUMBER: _ClassVar[int]
    DP_FIELD_NUMBER: _ClassVar[int]
    name: str
    columns: _containers.RepeatedCompositeFieldContainer[ColumnInfo]
    min_group_size: int
    holders: _containers.RepeatedScalarFieldContainer[str]
    assets: _containers.RepeatedScalarFieldContainer[str]
    dp: DpPolicy
    def __init__(self, name: _Optional[str] = ..., columns: _Optional[_Iterable[_Union[ColumnInfo, _Mapping]]] = ..., min_group_size: _Optional[int] = ..., holders: _Optional[_Iterable[str]] = ..., assets: _Optional[_Iterable[str]] = ..., dp: _Optional[_Union[DpPolicy, _Mapping]] = ...) -> None: ...

class DpBound(_message.Message):
    __slots__ = ("column", "lower", "upper")
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    LOWER_FIELD_NUMBER: _ClassVar[int]
    UPPER_FIELD_NUMBER: _ClassVar[int]
    column: str
    lower: str
    upper: str
    def __init__(self, column: _Optional[str] = ..., lower: _Optional[str] = ..., upper: _Optional[str] = ...) -> None: ...

class DpPolicy(_message.Message):
    __slots__ = ("unit", "max_rows", "rho", "honest_holders", "bounds", "unit_holders")
    UNIT_FIELD_NUMBER: _ClassVar[int]
    MAX_ROWS_FIELD_NUMBER: _ClassVar[int]
    RHO_FIELD_NUMBER: _ClassVar[int]
    HONEST_HOLDERS_FIELD_NUMBER: _ClassVar[int]
    BOUNDS_FIELD_NUMBER: _ClassVar[int]
    UNIT_HOLDERS_FIELD_NUMBER: _ClassVar[int]
    unit: str
    max_rows: int
    rho: str
    honest_holders: int
    bounds: _containers.RepeatedCompositeFieldContainer[DpBound]
    unit_holders: int
    def __init__(self, unit: _Optional[str] = ..., max_rows: _Optional[int] = ..., rho: _Optional[str] = ..., honest_holders: _Optional[int] = ..., bounds: _Optional[_Iterable[_Union[DpBound, _Mapping]]] = ..., unit_holders: _Optional[int] = ...) -> None: ...

class TableConflict(_message.Message):
    __slots__ = ("table", "reason")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    table: str
    reason: str
    def __init__(self, table: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Catalog(_message.Message):
    __slots__ = ("holder", "tables", "vouchers_required", "conflicts", "mask_key", "leaf_keys")
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    TABLES_FIELD_NUMBER: _ClassVar[int]
    VOUCHERS_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    MASK_KEY_FIELD_NUMBER: _ClassVar[int]
    LEAF_KEYS_FIELD_NUMBER: _ClassVar[int]
    holder: str
    tables: _containers.RepeatedCompositeFieldContainer[TableInfo]
    vouchers_required: bool
    conflicts: _containers.RepeatedCompositeFieldContainer[TableConflict]
    mask_key: _mask_pb2.MaskKey
    leaf_keys: _containers.RepeatedCompositeFieldContainer[_mask_pb2.MaskParticipant]
    def __init__(self, holder: _Optional[str] = ..., tables: _Optional[_Iterable[_Union[TableInfo, _Mapping]]] = ..., vouchers_required: _Optional[bool] = ..., conflicts: _Optional[_Iterable[_Union[TableConflict, _Mapping]]] = ..., mask_key: _Optional[_Union[_mask_pb2.MaskKey, _Mapping]] = ..., leaf_keys: _Optional[_Iterable[_Union[_mask_pb2.MaskParticipant, _Mapping]]] = ...) -> None: ...

class GetCatalogRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
