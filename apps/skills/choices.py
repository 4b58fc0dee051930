from django.db import models


class ToolSource(models.TextChoices):
    BUILTIN = "builtin", "Built-in"
    MCP = "mcp", "MCP server"
    OPENAPI = "openapi", "OpenAPI import"
    A2A = "a2a", "Remote A2A agent"
    WORKFLOW = "workflow", "Workflow"


class BuiltinTool(models.TextChoices):
    HTTP_REQUEST = "http_request", "HTTP request"
    WEB_FETCH = "web_fetch", "Web page fetch"


class McpTransport(models.TextChoices):
    STREAMABLE_HTTP = "streamable_http", "Streamable HTTP"
    SSE = "sse", "SSE"
    STDIO = "stdio", "stdio (operator registry)"


class McpAuth(models.TextChoices):
    NONE = "none", "None"
    BEARER = "bearer", "Bearer token"
    OAUTH = "oauth", "OAuth 2.1"


class McpStatus(models.TextChoices):
    PENDING = "pending", "Not checked yet"
    CONNECTED = "connected", "Connected"
    ERROR = "error", "Error"
    NEEDS_AUTHORIZATION = "needs_authorization", "Needs OAuth authorization"


class OpenApiAuth(models.TextChoices):
    NONE = "none", "None"
    BEARER = "bearer", "Bearer token"
    HEADER = "header", "API key header"
    QUERY = "query", "API key query parameter"


class SkillSource(models.TextChoices):
    UPLOAD = "upload", "ZIP upload"
    URL = "url", "URL import"
    API = "api", "Written through the API"
    SYSTEM = "system", "Operator (system skill)"


class RemoteAgentAuth(models.TextChoices):
    NONE = "none", "None"
    BEARER = "bearer", "Bearer token"
    HEADER = "header", "API key header"


class RemoteAgentStatus(models.TextChoices):
    PENDING = "pending", "Not checked yet"
    CONNECTED = "connected", "Card fetched"
    ERROR = "error", "Error"
