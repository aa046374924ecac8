-- xchan_echo.lua — xchan.lua's other side (a module for go.spawn_on):
-- sends back every value received on ping, until ping closes.
return function(ping, pong)
  for v in function() return (ping:recv()) end do pong:send(v) end
end
