from apps.core.exceptions import Conflict, NotFound, ValidationFailed


class ToolNotFound(NotFound):
    code = "tool_not_found"
    default_message = "Tool not found."


class McpServerNotFound(NotFound):
    code = "mcp_server_not_found"
    default_message = "MCP server not found."


class StdioCommandNotFound(NotFound):
    code = "stdio_command_not_found"
    default_message = "No such stdio command in the operator's registry."


class OpenApiSourceNotFound(NotFound):
    code = "openapi_source_not_found"
    default_message = "OpenAPI source not found."


class SkillNotFound(NotFound):
    code = "skill_not_found"
    default_message = "Skill not found."


class SkillVersionNotFound(NotFound):
    code = "skill_version_not_found"
    default_message = "Skill version not found."


class RemoteAgentNotFound(NotFound):
    code = "remote_agent_not_found"
    default_message = "Remote agent not found."


class NameTaken(Conflict):
    code = "name_taken"
    default_message = "That name is already used in this workspace."


class InvalidSkill(ValidationFailed):
    code = "invalid_skill"
    default_message = "The skill is invalid."


class UnsafeArchive(ValidationFailed):
    code = "unsafe_archive"
    default_message = "The ZIP archive was refused."


class InvalidOpenApi(ValidationFailed):
    code = "invalid_openapi"
    default_message = "The OpenAPI document is invalid."


class InvalidToolArguments(ValidationFailed):
    code = "invalid_tool_arguments"
    default_message = "The arguments do not match the tool's parameters."


class McpConnectionFailed(ValidationFailed):
    code = "mcp_connection_failed"
    default_message = "Could not connect to the MCP server."


class OAuthFailed(ValidationFailed):
    code = "mcp_oauth_failed"
    default_message = "The OAuth authorization did not complete."
