# Generated from proto/mcp/v2/mcp.proto by `python -m mcp_engine.api.grpc.generate`; do not edit.
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProcessMessageRequest(_message.Message):
    __slots__ = ("tenant_id", "conversation_id", "content", "metadata", "hints", "user_id", "channel", "user_profile")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    HINTS_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    USER_PROFILE_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    conversation_id: str
    content: MessageContent
    metadata: _containers.ScalarMap[str, str]
    hints: ProcessingHints
    user_id: str
    channel: str
    user_profile: _struct_pb2.Struct
    def __init__(self, tenant_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., content: _Optional[_Union[MessageContent, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., hints: _Optional[_Union[ProcessingHints, _Mapping]] = ..., user_id: _Optional[str] = ..., channel: _Optional[str] = ..., user_profile: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class MessageContent(_message.Message):
    __slots__ = ("type", "text", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    type: str
    text: str
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, type: _Optional[str] = ..., text: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ProcessingHints(_message.Message):
    __slots__ = ("priority", "bypass_cache", "force_flow")
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    BYPASS_CACHE_FIELD_NUMBER: _ClassVar[int]
    FORCE_FLOW_FIELD_NUMBER: _ClassVar[int]
    priority: str
    bypass_cache: bool
    force_flow: str
    def __init__(self, priority: _Optional[str] = ..., bypass_cache: _Optional[bool] = ..., force_flow: _Optional[str] = ...) -> None: ...

class ProcessMessageResponse(_message.Message):
    __slots__ = ("conversation_id", "current_state", "response", "context_updates", "actions_performed", "processing_time_ms", "messages", "confidence_scores", "ab_variant", "flow_id", "flow_version")
    class ContextUpdatesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ConfidenceScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STATE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_UPDATES_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_PERFORMED_FIELD_NUMBER: _ClassVar[int]
    PROCESSING_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_SCORES_FIELD_NUMBER: _ClassVar[int]
    AB_VARIANT_FIELD_NUMBER: _ClassVar[int]
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    FLOW_VERSION_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    current_state: str
    response: MessageContent
    context_updates: _containers.ScalarMap[str, str]
    actions_performed: _containers.RepeatedScalarFieldContainer[str]
    processing_time_ms: int
    messages: _containers.RepeatedCompositeFieldContainer[MessageContent]
    confidence_scores: _containers.ScalarMap[str, float]
    ab_variant: str
    flow_id: str
    flow_version: str
    def __init__(self, conversation_id: _Optional[str] = ..., current_state: _Optional[str] = ..., response: _Optional[_Union[MessageContent, _Mapping]] = ..., context_updates: _Optional[_Mapping[str, str]] = ..., actions_performed: _Optional[_Iterable[str]] = ..., processing_time_ms: _Optional[int] = ..., messages: _Optional[_Iterable[_Union[MessageContent, _Mapping]]] = ..., confidence_scores: _Optional[_Mapping[str, float]] = ..., ab_variant: _Optional[str] = ..., flow_id: _Optional[str] = ..., flow_version: _Optional[str] = ...) -> None: ...

class GetStateRequest(_message.Message):
    __slots__ = ("tenant_id", "conversation_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    conversation_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., conversation_id: _Optional[str] = ...) -> None: ...

class GetStateResponse(_message.Message):
    __slots__ = ("conversation_id", "current_state", "flow_id", "flow_version", "context", "ab_variant", "user_profile")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STATE_FIELD_NUMBER: _ClassVar[int]
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    FLOW_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    AB_VARIANT_FIELD_NUMBER: _ClassVar[int]
    USER_PROFILE_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    current_state: str
    flow_id: str
    flow_version: str
    context: _struct_pb2.Struct
    ab_variant: str
    user_profile: _struct_pb2.Struct
    def __init__(self, conversation_id: _Optional[str] = ..., current_state: _Optional[str] = ..., flow_id: _Optional[str] = ..., flow_version: _Optional[str] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., ab_variant: _Optional[str] = ..., user_profile: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ResetRequest(_message.Message):
    __slots__ = ("tenant_id", "conversation_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    conversation_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., conversation_id: _Optional[str] = ...) -> None: ...

class ResetResponse(_message.Message):
    __slots__ = ("reset",)
    RESET_FIELD_NUMBER: _ClassVar[int]
    reset: bool
    def __init__(self, reset: _Optional[bool] = ...) -> None: ...
