defmodule Foundation.TaskHelper do
  @moduledoc "Runs work under a Task.Supervisor instead of a bare process."

  def run_supervised(supervisor, fun) do
    supervisor
    |> Task.Supervisor.async_nolink(fun)
    |> Task.await()
  end
end
