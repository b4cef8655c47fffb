from unseen.v1 import score_pb2 as _score_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrainFeatures(_message.Message):
    __slots__ = ("holder", "table", "key", "columns", "intercept", "definitions")
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    INTERCEPT_FIELD_NUMBER: _ClassVar[int]
    DEFINITIONS_FIELD_NUMBER: _ClassVar[int]
    holder: str
    table: str
    key: str
    columns: _containers.RepeatedScalarFieldContainer[str]
    intercept: bool
    definitions: _containers.RepeatedCompositeFieldContainer[_score_pb2.FeatureSpec]
    def __init__(self, holder: _Optional[str] = ..., table: _Optional[str] = ..., key: _Optional[str] = ..., columns: _Optional[_Iterable[str]] = ..., intercept: _Optional[bool] = ..., definitions: _Optional[_Iterable[_Union[_score_pb2.FeatureSpec, _Mapping]]] = ...) -> None: ...

class TrainGradient(_message.Message):
    __slots__ = ("holder", "values")
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    holder: str
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, holder: _Optional[str] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class TrainRequest(_message.Message):
    __slots__ = ("job_id", "step", "iteration", "key_id", "spec", "features", "ids", "validation_ids", "vouchers", "ciphertexts", "gradients", "best")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_IDS_FIELD_NUMBER: _ClassVar[int]
    VOUCHERS_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXTS_FIELD_NUMBER: _ClassVar[int]
    GRADIENTS_FIELD_NUMBER: _ClassVar[int]
    BEST_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    step: str
    iteration: int
    key_id: str
    spec: str
    features: _containers.RepeatedCompositeFieldContainer[TrainFeatures]
    ids: _containers.RepeatedScalarFieldContainer[str]
    validation_ids: _containers.RepeatedScalarFieldContainer[str]
    vouchers: _containers.RepeatedScalarFieldContainer[str]
    ciphertexts: _containers.RepeatedScalarFieldContainer[bytes]
    gradients: _containers.RepeatedCompositeFieldContainer[TrainGradient]
    best: int
    def __init__(self, job_id: _Optional[str] = ..., step: _Optional[str] = ..., iteration: _Optional[int] = ..., key_id: _Optional[str] = ..., spec: _Optional[str] = ..., features: _Optional[_Iterable[_Union[TrainFeatures, _Mapping]]] = ..., ids: _Optional[_Iterable[str]] = ..., validation_ids: _Optional[_Iterable[str]] = ..., vouchers: _Optional[_Iterable[str]] = ..., ciphertexts: _Optional[_Iterable[bytes]] = ..., gradients: _Optional[_Iterable[_Union[TrainGradient, _Mapping]]] = ..., best: _Optional[int] = ...) -> None: ...

class TrainProducts(_message.Message):
    __slots__ = ("holder", "ciphertexts", "features")
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXTS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    holder: str
    ciphertexts: _containers.RepeatedScalarFieldContainer[bytes]
    features: int
    def __init__(self, holder: _Optional[str] = ..., ciphertexts: _Optional[_Iterable[bytes]] = ..., features: _Optional[int] = ...) -> None: ...

class TrainDigest(_message.Message):
    __slots__ = ("holder", "digest", "statement")
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    STATEMENT_FIELD_NUMBER: _ClassVar[int]
    holder: str
    digest: str
    statement: str
    def __init__(self, holder: _Optional[str] = ..., digest: _Optional[str] = ..., statement: _Optional[str] = ...) -> None: ...

class TrainReply(_message.Message):
    __slots__ = ("products", "ciphertexts", "digests", "receipts")
    PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXTS_FIELD_NUMBER: _ClassVar[int]
    DIGESTS_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    products: _containers.RepeatedCompositeFieldContainer[TrainProducts]
    ciphertexts: _containers.RepeatedScalarFieldContainer[bytes]
    digests: _containers.RepeatedCompositeFieldContainer[TrainDigest]
    receipts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, products: _Optional[_Iterable[_Union[TrainProducts, _Mapping]]] = ..., ciphertexts: _Optional[_Iterable[bytes]] = ..., digests: _Optional[_Iterable[_Union[TrainDigest, _Mapping]]] = ..., receipts: _Optional[_Iterable[str]] = ...) -> None: ...
