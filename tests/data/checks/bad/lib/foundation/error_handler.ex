defmodule Foundation.ErrorHandler do
  def safely(fun) do
    fun.()
  rescue
    _ -> :error
  catch
    _, _ -> :error
  end

  def spawn_worker(fun), do: Process.spawn(fun, [])
end
