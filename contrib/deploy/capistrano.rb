# Capistrano tasks: a snapback snapshot before every deploy, and rollback through snapback so
# the database can come back with the code.
#   in config/deploy.rb:  load "lib/capistrano/tasks/snapback.rake" (this file)
#   set :snapback_config, "/etc/snapback/shop.json"
namespace :snapback do
  desc "Snapshot the live release and databases before deploying"
  task :snapshot do
    on roles(:db), primary: true do
      # --wait: an hourly snapshot from cron may hold the lock at that moment
      execute :snapback, "--config", fetch(:snapback_config), "snapshot", "--tag", "pre-deploy",
              "--wait=600"
    end
  end

  desc "Roll back code and database to the previous release"
  task :rollback do
    # The database goes back once, from the host that took the pre-deploy snapshot; every
    # other app server only switches its code (running --with-database on each would restore
    # the same database several times at once).
    db_host = primary(:db)
    on db_host do
      execute :snapback, "--config", fetch(:snapback_config), "rollback", "--to", "previous",
              "--with-database", "--wait=600"
    end
    on roles(:app).reject { |host| host == db_host } do
      execute :snapback, "--config", fetch(:snapback_config), "rollback", "--to", "previous",
              "--wait=600"
    end
  end
end

before "deploy:starting", "snapback:snapshot"
