defmodule Foundation.Error do
  @moduledoc "The one error type: every failure is `{:error, %Foundation.Error{}}`."
  defexception [:code, :message]

  def new(code, message), do: %__MODULE__{code: code, message: message}
end
